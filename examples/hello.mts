// A tiny end-to-end example: random tensors, dtype conversion, tidy, read-back.
//   npx tsx examples/hello.mts
import * as lmk from 'lmkernels';

const device = lmk.defaultDevice();
console.log(`lmkernels ${lmk.backendInfo().version} on ${device}`);
const stats = await lmk.tidy(async () => {
  const x = lmk.randn([1 << 20], { seed: 1 });
  const values = await x.to('bfloat16').data();
  let mean = 0;
  for (const v of values) mean += v;
  return { n: values.length, mean: mean / values.length };
});
console.log(`mean of ${stats.n} bfloat16 normals: ${stats.mean.toFixed(4)}`);
console.log('memory after tidy:', lmk.memory());
