// tidy/keep bookkeeping. Scopes follow the async context (AsyncLocalStorage),
// so tidy works around async functions and concurrent tidies do not mix.
import { AsyncLocalStorage } from 'node:async_hooks';

/** What a scope needs of a tensor (avoids a cycle with tensor.ts). */
export interface Scoped {
  readonly isDisposed: boolean;
  dispose(): void;
  /** @internal */ _kept: boolean;
  /** @internal */ _scope: Scope | null;
}

export class Scope {
  readonly tensors = new Set<Scoped>();
  isClosed = false;
  constructor(readonly parent: Scope | null) {}

  disposeAll(except: Set<Scoped>): void {
    for (const t of this.tensors) {
      if (except.has(t) || t._kept) continue;
      t.dispose();
    }
    this.tensors.clear();
  }
}

const currentScope = new AsyncLocalStorage<Scope>();

/** Called by every new tensor. */
export function trackTensor(t: Scoped): void {
  const scope = currentScope.getStore();
  if (scope && !scope.isClosed) {
    scope.tensors.add(t);
    t._scope = scope;
  }
}

export function untrackTensor(t: Scoped): void {
  t._scope?.tensors.delete(t);
  t._scope = null;
}

function isScoped(value: unknown): value is Scoped {
  return typeof value === 'object' && value !== null && '_kept' in value && 'dispose' in value;
}

/** Tensors reachable from a returned value (arrays, plain objects, Maps, Sets). */
function collectTensors(value: unknown, into: Set<Scoped>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isScoped(value)) {
    into.add(value);
    return;
  }
  if (Array.isArray(value) || value instanceof Set) {
    for (const v of value) collectTensors(v, into, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectTensors(v, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null) {
    for (const v of Object.values(value)) collectTensors(v, into, seen);
  }
}

function closeScope(scope: Scope, result: unknown): void {
  const returned = new Set<Scoped>();
  collectTensors(result, returned);
  scope.isClosed = true;
  scope.disposeAll(returned);
  // Returned tensors belong to the enclosing tidy, if any.
  for (const t of returned) {
    if (t.isDisposed || t._kept) continue;
    t._scope = null;
    if (scope.parent && !scope.parent.isClosed) {
      scope.parent.tensors.add(t);
      t._scope = scope.parent;
    }
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * Runs fn and disposes every tensor it created that is neither returned nor
 * kept; also when fn throws. An async fn is awaited: its tensors are disposed
 * when its promise settles.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError(`tidy: fn must be a function, got ${typeof fn}`);
  const scope = new Scope(currentScope.getStore() ?? null);
  let result: T;
  try {
    result = currentScope.run(scope, fn);
  } catch (error) {
    closeScope(scope, undefined);
    throw error;
  }
  if (isPromiseLike(result)) {
    return Promise.resolve(result).then(
      (value) => {
        closeScope(scope, value);
        return value;
      },
      (error: unknown) => {
        closeScope(scope, undefined);
        throw error;
      },
    ) as T;
  }
  closeScope(scope, result);
  return result;
}

/** Marks t to survive every enclosing tidy. */
export function keep<T extends Scoped>(t: T): T {
  if (!isScoped(t)) throw new TypeError('keep: t must be a Tensor');
  t._kept = true;
  untrackTensor(t);
  return t;
}
