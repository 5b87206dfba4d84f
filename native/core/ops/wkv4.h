// RWKV-4 WKV ops (docs/api.md `wkv4`, math in docs/kernels.md#wkv4): validate every
// argument, allocate the outputs, enqueue the CPU or CUDA kernel on the
// device's stream and return at once.
//
// Errors, thrown before any work is queued, name the op and the argument
// (JS names: timeDecay, timeFirst, k, v, state, y, gy, gState):
//   TypeError  (ErrorKind::Type)  wrong dtype, tensors on different devices,
//                                 a tensor without storage, an unusable device
//   RangeError (ErrorKind::Range) wrong rank or shape, e.g.
//     "wkv4.forward: k must have shape [B,T,C] = [2,16,64] like v, got [2,16,32]"
//
// Dtypes: k and v float32 | bfloat16 | float16 | float64 (float64 CPU only),
// both the same. The "accumulation dtype" is float64 when k is float64, else
// float32: timeDecay, timeFirst, state, gState and gTimeDecay/gTimeFirst have
// it. y, gy, gk, gv have k's dtype.
//
// Sizes: B, T or C may be 0 (empty tensors, as PyTorch allows). With T = 0,
// forward returns an empty y and the input state (or the empty state
// aa = bb = 0, pp = -1e38); backward returns zero gTimeDecay/gTimeFirst and
// gState equal to the incoming gState (zero without one).
#pragma once
#include <optional>

#include "runtime/tensor.h"

namespace lmk::ops {

struct Wkv4ForwardArgs {
  Tensor time_decay;            // [C]; w = -exp(timeDecay) is applied inside
  Tensor time_first;            // [C]; u
  Tensor k;                     // [B,T,C]
  Tensor v;                     // [B,T,C]
  std::optional<Tensor> state;  // [B,3,C] = (aa, bb, pp); omitted: aa = bb = 0, pp = -1e38
};

struct Wkv4ForwardResult {
  Tensor y;      // [B,T,C], dtype of k
  Tensor state;  // [B,3,C], the state after the last step
};

struct Wkv4BackwardArgs {
  Tensor time_decay;             // [C]
  Tensor time_first;             // [C]
  Tensor k;                      // [B,T,C]
  Tensor v;                      // [B,T,C]
  std::optional<Tensor> state;   // [B,3,C]: the forward's input state, if it had one
  Tensor y;                      // [B,T,C]: the forward's y (validated; the kernel
                                 //   recomputes y in the accumulation dtype, so it is not read)
  Tensor gy;                     // [B,T,C]: d(loss)/dy
  std::optional<Tensor> gstate;  // [B,3,C]: d(loss)/d(output state); omitted: zero
};

struct Wkv4BackwardResult {
  Tensor gtime_decay;            // [C], summed over B (chain rule of w = -exp(timeDecay) included)
  Tensor gtime_first;            // [C], summed over B
  Tensor gk;                     // [B,T,C], dtype of k
  Tensor gv;                     // [B,T,C], dtype of k
  std::optional<Tensor> gstate;  // [B,3,C]: d(loss)/d(input state); present iff args.state was given
};

struct Wkv4StepArgs {
  Tensor time_decay;  // [C]
  Tensor time_first;  // [C]
  Tensor k;           // [B,C]: one token
  Tensor v;           // [B,C]
  Tensor state;       // [B,3,C], required
};

struct Wkv4StepResult {
  Tensor y;      // [B,C], dtype of k
  Tensor state;  // [B,3,C]
};

// wkv4.forward: y and the final state over a whole sequence.
Wkv4ForwardResult wkv4_forward(const Wkv4ForwardArgs& args);

// wkv4.backward: gradients of a loss through wkv4_forward(args without y, gy, gstate).
// Exact derivative of the stable recurrence as computed (including the pp
// component of the state), so chaining calls over parts of a sequence gives
// the gradients of one call over the whole of it.
Wkv4BackwardResult wkv4_backward(const Wkv4BackwardArgs& args);

// wkv4.step: one token of recurrent inference; equals wkv4_forward with T = 1.
Wkv4StepResult wkv4_step(const Wkv4StepArgs& args);

}  // namespace lmk::ops
