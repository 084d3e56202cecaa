/** Test helpers: a real nats-server per test, and waiting on conditions with a deadline. */
export { startTempNats as startTestNats } from "../../runtime/testing/temp-nats.js";
export type { TempNats as TestNats } from "../../runtime/testing/temp-nats.js";
export { waitFor } from "../../runtime/testing/wait.js";
export type { WaitForOptions } from "../../runtime/testing/wait.js";
