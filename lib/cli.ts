#!/usr/bin/env node
// `npx lmkernels <command>`: doctor, generate, finetune, launch (one file per command under lib/cli/).
import { doctor } from './cli/doctor';
import { finetune, FINETUNE_USAGE } from './cli/finetune';
import { generate, GENERATE_USAGE } from './cli/generate';
import { launch, LAUNCH_USAGE } from './cli/launch';
import { UsageError } from './cli/args';

const USAGE = `usage: lmkernels <command> [options]

  doctor     print what the backend found (CPU threads, GEMM, CUDA devices)
  generate   continue a prompt with a Hugging Face model directory; --help for its options
  finetune   fine-tune a Hugging Face model directory (sft, goldfish, orpo); --help for its options
  launch     run a script (or another command) on N processes with Open MPI's mpirun

${GENERATE_USAGE}

${FINETUNE_USAGE}

${LAUNCH_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'doctor':
      return doctor();
    case 'generate':
      return generate(rest);
    case 'finetune':
      return finetune(rest);
    case 'launch':
      return launch(rest);
    case undefined:
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`lmkernels: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    console.error(error instanceof UsageError ? error.message : `lmkernels: ${error.message}`);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  },
);
