// dist: the world and its collectives. In this process (no launcher) a world
// of one; on 2 ranks under mpirun (test/distributed/collectives.mts, every
// collective against values computed by hand); and a launcher's process
// where MPI cannot be opened. CI sets LMK_EXPECT_MPI=1, and there a missing
// mpirun fails instead of skipping.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { expectMpi, mpirun, root, runRanks } from './distributed/mpirun';

const entry = join(root, 'dist/cjs/index.js');

describe('dist in a process that no launcher started', () => {
  afterAll(async () => {
    if (lmk.dist.isInitialized()) await lmk.dist.finalize();
  });

  it('is a world of one, before and after init', async () => {
    expect(lmk.dist.isInitialized()).toBe(false);
    expect([lmk.dist.rank(), lmk.dist.worldSize()]).toEqual([0, 1]);
    expect(await lmk.dist.init()).toEqual({ rank: 0, worldSize: 1, localRank: 0, backend: 'none' });
    expect(lmk.dist.isInitialized()).toBe(true);
    // init again: the same world
    expect(await lmk.dist.init({ backend: 'mpi' })).toEqual({ rank: 0, worldSize: 1, localRank: 0, backend: 'none' });
  });

  it('makes every collective the identity over one rank', async () => {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as const) {
      for (const op of ['sum', 'mean', 'max', 'min'] as const) {
        const t = lmk.tensor([1.5, -2, 0.25], { dtype });
        expect(lmk.dist.allReduce(t, { op })).toBe(t);
        expect(Array.from(await t.data())).toEqual([1.5, -2, 0.25]);
      }
    }
    const b = lmk.tensor([3, 4], { dtype: 'int32' });
    expect(Array.from(await lmk.dist.broadcast(b, { root: 0 }).data())).toEqual([3, 4]);
    const input = lmk.tensor([1, 2, 3, 4, 5, 6], { shape: [3, 2] });
    for (const shape of [
      [1, 3, 2],
      [3, 2],
    ]) {
      const output = lmk.zeros(shape);
      expect(lmk.dist.allGather({ input, output })).toBe(output);
      expect(Array.from(await output.data())).toEqual([1, 2, 3, 4, 5, 6]);
      const scattered = lmk.zeros([3, 2]);
      lmk.dist.reduceScatter({ input: output, output: scattered, op: 'mean' });
      expect(Array.from(await scattered.data())).toEqual([1, 2, 3, 4, 5, 6]);
    }
    await lmk.dist.barrier();
  });

  it('rejects bad arguments with TypeError / RangeError naming the function and argument', () => {
    const t = lmk.zeros([2, 3]);
    expect(() => lmk.dist.allReduce(t, { op: 'avg' as never })).toThrow(
      new RangeError("dist.allReduce: op must be one of 'sum', 'mean', 'max', 'min', got 'avg'"),
    );
    expect(() => lmk.dist.allReduce([1, 2] as never)).toThrow(TypeError);
    expect(() => lmk.dist.allReduce([1, 2] as never)).toThrow(/dist\.allReduce: t/);
    expect(() => lmk.dist.allReduce(t, { opp: 'sum' } as never)).toThrow(/dist\.allReduce: unknown option 'opp'/);
    expect(() => lmk.dist.allReduce(lmk.zeros([2], { dtype: 'int32' }), { op: 'mean' })).toThrow(
      /dist\.allReduce: op 'mean' needs a floating tensor.*int32/,
    );
    expect(() => lmk.dist.broadcast(t, { root: 1 })).toThrow(
      new RangeError('dist.broadcast: root must be a rank in [0, 1), got 1'),
    );
    expect(() => lmk.dist.broadcast(t, { root: 0.5 })).toThrow(RangeError);
    expect(() => lmk.dist.broadcast(t, { root: '0' as never })).toThrow(TypeError);
    expect(() => lmk.dist.allGather({ input: t, output: lmk.zeros([4, 3]) })).toThrow(
      new RangeError(
        'dist.allGather: output must have shape [1,2,3] or [2,3] (worldSize 1 times input [2,3]), got [4,3]',
      ),
    );
    expect(() => lmk.dist.allGather({ input: t, output: lmk.zeros([1, 2, 3], { dtype: 'float64' }) })).toThrow(
      /dist\.allGather: output must have dtype float32/,
    );
    expect(() => lmk.dist.allGather({ input: t } as never)).toThrow(/dist\.allGather: output/);
    expect(() => lmk.dist.reduceScatter({ input: lmk.zeros([3]), output: lmk.zeros([2]) })).toThrow(
      /dist\.reduceScatter: input must have shape \[1,2\] or \[2\]/,
    );
  });

  it('finalizes, and a world of one can start again', async () => {
    await lmk.dist.finalize();
    expect(lmk.dist.isInitialized()).toBe(false);
    expect(() => lmk.dist.allReduce(lmk.zeros([1]))).toThrow(/dist\.allReduce: call dist\.init\(\) first/);
    await expect(lmk.dist.barrier()).rejects.toThrow(/dist\.barrier: call dist\.init\(\) first/);
    expect((await lmk.dist.init()).worldSize).toBe(1);
  });
});

describe('dist in a process a launcher started', () => {
  function initIn(env: Record<string, string>, options = '{}'): { status: number | null; out: string } {
    const script = `require(${JSON.stringify(entry)}).dist.init(${options}).then(
      (w) => console.log('world', JSON.stringify(w)),
      (e) => { console.log(e.constructor.name + ': ' + e.message); process.exitCode = 3; })`;
    const r = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, OMPI_COMM_WORLD_SIZE: '', PMIX_RANK: '', PMI_RANK: '', PMI_SIZE: '', ...env },
    });
    return { status: r.status, out: r.stdout + r.stderr };
  }

  it('rejects with an Error naming the missing MPI library and how to install it', () => {
    for (const launcher of ['OMPI_COMM_WORLD_SIZE', 'PMIX_RANK']) {
      const r = initIn({ [launcher]: '2', LMK_MPI_LIBRARY: '/nonexistent/libmpi.so.40' });
      expect(r.status).toBe(3);
      expect(r.out).toContain(`Error: dist.init: this process was started by an MPI launcher (${launcher} is set)`);
      expect(r.out).toContain('/nonexistent/libmpi.so.40');
      expect(r.out).toContain('Open MPI >= 4 (libmpi.so.40)');
      expect(r.out).toContain('apt-get install openmpi-bin libopenmpi-dev');
    }
  });

  it('rejects a library that is not Open MPI, naming what is missing', () => {
    const r = initIn({ OMPI_COMM_WORLD_SIZE: '2', LMK_MPI_LIBRARY: 'libm.so.6' });
    expect(r.status).toBe(3);
    expect(r.out).toContain('libm.so.6 has no symbol MPI_Init_thread');
  });

  it.runIf(mpirun)("rejects backend 'nccl' where there is no CUDA device or no NCCL, saying which", () => {
    const r = initIn(
      { OMPI_COMM_WORLD_SIZE: '2', LMK_NCCL_LIBRARY: '/nonexistent/libnccl.so.2' },
      "{ backend: 'nccl' }",
    );
    expect(r.status).toBe(3);
    expect(r.out).toContain("Error: dist.init: backend 'nccl' needs a CUDA device and NCCL 2 (libnccl.so.2): ");
    expect(r.out).toMatch(/no CUDA device: |NCCL cannot be opened: \/nonexistent\/libnccl\.so\.2/);
    expect(r.out).toContain('set LMK_NCCL_LIBRARY to its path');
  });

  it('without a launcher is a world of one even when MPI cannot be opened', () => {
    const r = initIn({ LMK_MPI_LIBRARY: '/nonexistent/libmpi.so.40' });
    expect(r.status).toBe(0);
    expect(r.out).toContain('world {"rank":0,"worldSize":1,"localRank":0,"backend":"none"}');
  });
});

describe('doctor', () => {
  function doctor(env: Record<string, string>): string {
    const r = spawnSync(process.execPath, [join(root, 'dist/cjs/cli.js'), 'doctor'], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, ...env },
    });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  }

  it('says when MPI is not found and how to install it', () => {
    expect(doctor({ LMK_MPI_LIBRARY: '/nonexistent/libmpi.so.40' })).toMatch(
      /^ {2}mpi +not found \(apt-get install openmpi-bin libopenmpi-dev\)$/m,
    );
  });

  it.runIf(mpirun)('names the MPI library it opens', () => {
    expect(doctor({})).toMatch(/^ {2}mpi +libmpi\.so\.40$/m);
  });
});

describe('dist on 2 ranks (mpirun -n 2, one thread each)', () => {
  it.runIf(expectMpi && !mpirun)('has mpirun where LMK_EXPECT_MPI=1', () => {
    expect.fail('LMK_EXPECT_MPI=1 but mpirun is not on PATH (apt-get install openmpi-bin libopenmpi-dev)');
  });

  it.runIf(mpirun)(
    'computes every collective as by hand, in order, and reports mismatched calls on every rank',
    () => {
      const r = runRanks('test/distributed/collectives.mts', { ranks: 2, timeout: 120_000 });
      const lines = r.stdout.split('\n').filter((l) => l.length > 0);
      const failures = lines.filter((l) => l.startsWith('FAIL'));
      expect(failures, r.stderr).toEqual([]);
      expect(r.signal, 'timed out: a hang').toBeNull();
      expect(r.status, r.stderr).toBe(0);
      const passed = (name: string) => lines.filter((l) => l === `ok ${name}`).length;
      const expected = ['world', 'in order with other ops, JS thread free', 'barrier', 'finalize'];
      const dtypes = ['float32', 'float64', 'bfloat16', 'float16', 'int32'];
      for (const dtype of dtypes) {
        for (const op of ['sum', 'mean', 'max', 'min']) {
          if (dtype === 'int32' && op === 'mean') continue;
          expected.push(`allReduce ${dtype} ${op}`, `reduceScatter ${dtype} ${op}`);
        }
        expected.push(`broadcast ${dtype} root 0`, `broadcast ${dtype} root 1`);
        expected.push(`allGather ${dtype} into [2,3,2]`, `allGather ${dtype} into [6,2]`);
      }
      expected.push('allReduce float32 sum rounds once');
      for (const what of ['shapes', 'dtypes', 'ops', 'roots', 'collectives']) expected.push(`mismatched ${what}`);
      expected.push('a matching call after mismatches');
      for (const name of expected) expect([name, passed(name)]).toEqual([name, 2]); // on both ranks
    },
    150_000,
  );
});
