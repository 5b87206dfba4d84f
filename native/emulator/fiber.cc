// See fiber.h. The x86-64 switch saves the System V callee-saved registers
// (rbp, rbx, r12-r15) on the old stack, stores its stack pointer, loads the
// new one and pops the same registers: a fiber is suspended only inside this
// call, so every other register is dead. The floating-point control words
// are not switched: no kernel changes rounding modes.
#include "emulator/fiber.h"

#include <cstdint>
#include <cstdlib>

// The saved contexts pass between fibers that ThreadSanitizer treats as
// unsynchronised threads: not instrumented.
#if defined(__SANITIZE_THREAD__)
#define LMK_EMU_NO_TSAN __attribute__((no_sanitize_thread))
#else
#define LMK_EMU_NO_TSAN
#endif

namespace lmk::emulator {

#if defined(LMK_EMU_ASM_SWITCH)

extern "C" void lmk_emu_switch(void** save_stack_pointer, void* load_stack_pointer);
extern "C" void lmk_emu_fiber_start();

// lmk_emu_fiber_start is where a new fiber's first switch returns to: r12
// holds the argument, r13 the entry function; the stack is 16-byte aligned
// there, as the call needs.
asm(R"(
  .text
  .p2align 4
  .globl lmk_emu_switch
  .hidden lmk_emu_switch
  .type lmk_emu_switch, @function
lmk_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lmk_emu_switch, .-lmk_emu_switch

  .p2align 4
  .globl lmk_emu_fiber_start
  .hidden lmk_emu_fiber_start
  .type lmk_emu_fiber_start, @function
lmk_emu_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size lmk_emu_fiber_start, .-lmk_emu_fiber_start
)");

LMK_EMU_NO_TSAN void prepare_fiber(FiberContext& context, char* stack, size_t size, void (*entry)(void*),
                                   void* argument) {
  auto top = reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t(15);
  // From the saved stack pointer up: r15 r14 r13 r12 rbx rbp, return address.
  // After `ret` the stack pointer is top - 16, 16-byte aligned.
  auto* slots = reinterpret_cast<uintptr_t*>(top - 24 - 6 * 8);
  slots[0] = 0;                                      // r15
  slots[1] = 0;                                      // r14
  slots[2] = reinterpret_cast<uintptr_t>(entry);     // r13
  slots[3] = reinterpret_cast<uintptr_t>(argument);  // r12
  slots[4] = 0;                                      // rbx
  slots[5] = 0;                                      // rbp: ends frame-pointer walks
  slots[6] = reinterpret_cast<uintptr_t>(&lmk_emu_fiber_start);
  context.stack_pointer = slots;
}

LMK_EMU_NO_TSAN void switch_fiber(FiberContext& from, FiberContext& to) {
  lmk_emu_switch(&from.stack_pointer, to.stack_pointer);
}

#else

namespace {
// makecontext passes int arguments: the two halves of each pointer.
void start_from_ucontext(int entry_high, int entry_low, int argument_high, int argument_low) {
  auto join = [](int high, int low) {
    return (static_cast<uintptr_t>(static_cast<uint32_t>(high)) << 32) | static_cast<uint32_t>(low);
  };
  auto entry = reinterpret_cast<void (*)(void*)>(join(entry_high, entry_low));
  entry(reinterpret_cast<void*>(join(argument_high, argument_low)));
  std::abort();  // entry never returns
}
}  // namespace

LMK_EMU_NO_TSAN void prepare_fiber(FiberContext& context, char* stack, size_t size, void (*entry)(void*),
                                   void* argument) {
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack;
  context.context.uc_stack.ss_size = size;
  context.context.uc_link = nullptr;
  auto e = reinterpret_cast<uintptr_t>(entry);
  auto a = reinterpret_cast<uintptr_t>(argument);
  makecontext(&context.context, reinterpret_cast<void (*)()>(&start_from_ucontext), 4,
              static_cast<int>(static_cast<uint64_t>(e) >> 32), static_cast<int>(e & 0xffffffffu),
              static_cast<int>(static_cast<uint64_t>(a) >> 32), static_cast<int>(a & 0xffffffffu));
}

LMK_EMU_NO_TSAN void switch_fiber(FiberContext& from, FiberContext& to) { swapcontext(&from.context, &to.context); }

#endif

}  // namespace lmk::emulator
