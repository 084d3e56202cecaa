/** Command-line handling shared by `npm run bench` and `npm run chaos`: --help, and one clear line on bad input. */

/**
 * Runs `parse` (a `parseArgs` call) on the command line. `--help` or `-h` prints `usage` and exits
 * 0; an unknown option or a missing value prints what was wrong and the usage on stderr and exits
 * 2, never a stack trace.
 */
export function parseCommandLine<T>(command: string, usage: string, parse: () => T): T {
  if (process.argv.slice(2).some((a) => a === "--help" || a === "-h")) {
    process.stdout.write(usage);
    process.exit(0);
  }
  try {
    return parse();
  } catch (err) {
    process.stderr.write(`${command}: ${err instanceof Error ? err.message : String(err)}\n\n${usage}`);
    process.exit(2);
  }
}
