import { defineConfig } from "vitest/config";

// `npm run test:hosts`: three hosts as network namespaces (root, `ip netns`), one to three minutes
// of faults under load. Kept out of `npm test`, which needs neither root nor those minutes; CI runs
// both and counts both (.ci/run).
export default defineConfig({
  test: {
    include: ["test/hosts.test.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
