import { defineConfig } from "vitest/config";

// Cluster tests start nats-server and node processes; on two cores they run one file at a time.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // test/hosts.test.ts has its own run (npm run test:hosts, vitest.hosts.config.ts).
    exclude: ["test/deno/**", "test/hosts.test.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
