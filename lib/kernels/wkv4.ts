// RWKV-4 WKV (docs/api.md `wkv4`; math in docs/kernels.md#wkv4).
//
// Choices where the contract is silent:
// - B, T or C may be 0. With T = 0, forward returns an empty y and the input
//   state (or the empty state); backward returns zero gTimeDecay/gTimeFirst
//   and gState equal to the incoming gState (zero without one).
// - backward validates `y` but recomputes the forward internally in the
//   accumulation dtype, so it does not read y's values.
import { native, type NativeAddon } from '../native';
import type { Tensor } from '../tensor';
import { nativeOptions, wrapResult } from './common';

export interface Wkv4ForwardOptions {
  timeDecay: Tensor;
  timeFirst: Tensor;
  k: Tensor;
  v: Tensor;
  state?: Tensor;
}
export interface Wkv4BackwardOptions extends Wkv4ForwardOptions {
  y: Tensor;
  gy: Tensor;
  gState?: Tensor;
}
export interface Wkv4StepOptions {
  timeDecay: Tensor;
  timeFirst: Tensor;
  k: Tensor;
  v: Tensor;
  state: Tensor;
}

type Args<K extends keyof NativeAddon> = Parameters<NativeAddon[K]>[0];

export const wkv4 = {
  /** y [B,T,C] and the state [B,3,C] after the last step. */
  forward(opts: Wkv4ForwardOptions): { y: Tensor; state: Tensor } {
    const o = nativeOptions<Args<'wkv4Forward'>>('wkv4.forward', opts, {
      tensors: ['timeDecay', 'timeFirst', 'k', 'v'],
      optionalTensors: ['state'],
    });
    return wrapResult(native().wkv4Forward(o));
  },
  /** Gradients of the inputs; gState (w.r.t. the input state) iff state was given. */
  backward(opts: Wkv4BackwardOptions): {
    gTimeDecay: Tensor;
    gTimeFirst: Tensor;
    gk: Tensor;
    gv: Tensor;
    gState?: Tensor;
  } {
    const o = nativeOptions<Args<'wkv4Backward'>>('wkv4.backward', opts, {
      tensors: ['timeDecay', 'timeFirst', 'k', 'v', 'y', 'gy'],
      optionalTensors: ['state', 'gState'],
    });
    return wrapResult(native().wkv4Backward(o));
  },
  /** One token of recurrent inference: k, v [B,C], state [B,3,C] required. */
  step(opts: Wkv4StepOptions): { y: Tensor; state: Tensor } {
    const o = nativeOptions<Args<'wkv4Step'>>('wkv4.step', opts, {
      tensors: ['timeDecay', 'timeFirst', 'k', 'v', 'state'],
    });
    return wrapResult(native().wkv4Step(o));
  },
};
