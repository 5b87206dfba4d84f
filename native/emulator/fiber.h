// Execution contexts for the emulated CUDA threads: a stack and a saved stack
// pointer, switched by a hand-written x86-64 routine (callee-saved registers
// only, no system call) or, on other targets, by ucontext.
#pragma once
#include <cstddef>

#if defined(__x86_64__) && !defined(LMK_EMU_UCONTEXT)
#define LMK_EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace lmk::emulator {

struct FiberContext {
#if defined(LMK_EMU_ASM_SWITCH)
  void* stack_pointer = nullptr;
#else
  ucontext_t context;
#endif
};

// Makes `context` start entry(argument) on [stack, stack + size) when first
// switched to. entry must never return (it switches away for the last time).
void prepare_fiber(FiberContext& context, char* stack, size_t size, void (*entry)(void*), void* argument);
// Saves the running context in `from` and continues `to`.
void switch_fiber(FiberContext& from, FiberContext& to);

}  // namespace lmk::emulator
