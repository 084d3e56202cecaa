import { defineConfig } from "vitest/config";

// `npm run test:deno`: nodes run under Deno 2 (the test runner itself stays on Node).
export default defineConfig({
  test: {
    include: ["test/deno/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
