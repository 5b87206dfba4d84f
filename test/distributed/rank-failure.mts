// `rank-failure.mts kill|throw`: every rank all-reduces in a loop; at the third iteration rank 1
// kills itself (SIGKILL, as a crash would) or throws. The others are then blocked in a collective
// with a peer that is gone: the job must end (non-zero, naming rank 1) rather than hang.
import * as lmk from 'lmkernels';

const how = process.argv[2];
await lmk.dist.init();
for (let i = 0; i < 1000; i++) {
  if (lmk.dist.rank() === 1 && i === 3) {
    if (how === 'kill') process.kill(process.pid, 'SIGKILL');
    throw new Error('rank-failure.mts: rank 1 throws on purpose');
  }
  const t = lmk.ones([1024]);
  lmk.dist.allReduce(t, { op: 'sum' });
  await t.data();
  t.dispose();
}
await lmk.dist.finalize();
