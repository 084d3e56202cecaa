import { defineConfig } from "vitest/config";

// `npm run test:hosts`: three hosts as network namespaces (root, `ip netns`). Not part of
// `npm test`: it is not yet stable (see README, "Running nodes on several hosts"), and a test that
// fails some runs must not decide whether unrelated work lands. CI runs it and reports it.
export default defineConfig({
  test: {
    include: ["test/hosts.test.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
