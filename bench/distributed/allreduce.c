/* Baseline for bench/dist.bench.ts: Open MPI's own MPI_Allreduce (in place, float32 sum over
 * MPI_COMM_WORLD) from C, timed as bench/distributed/allreduce.mts times lmkernels' dist.allReduce:
 * for each size, a barrier then one call, repeated; the minimum time. Compiled with mpicc when the
 * benchmark runs. Usage: mpirun -n W allreduce REPEATS BYTES... ; rank 0 prints one JSON line. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int repeats = argc > 1 ? atoi(argv[1]) : 5;
  if (rank == 0) printf("[");
  for (int a = 2; a < argc; ++a) {
    long bytes = atol(argv[a]);
    long n = bytes / 4;
    float* x = malloc(n * sizeof(float));
    for (long i = 0; i < n; ++i) x[i] = (float)(rank + 1);
    /* Validate first: the sum of 1..W everywhere. */
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    float expected = size * (size + 1) / 2.0f;
    for (long i = 0; i < n; i += 4099) {
      if (x[i] != expected) {
        fprintf(stderr, "allreduce.c: element %ld is %g, expected %g\n", i, x[i], expected);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      double t = MPI_Wtime() - t0;
      /* The slowest rank's time is the collective's. */
      MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (t < best) best = t;
    }
    if (rank == 0) printf("%s{\"bytes\":%ld,\"seconds\":%.9f}", a > 2 ? "," : "", bytes, best);
    free(x);
  }
  if (rank == 0) printf("]\n");
  MPI_Finalize();
  return 0;
}
