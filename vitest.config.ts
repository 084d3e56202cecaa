import { defineConfig } from "vitest/config";

// Cluster tests start nats-server and node processes; on two cores they run one file at a time.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/deno/**"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
