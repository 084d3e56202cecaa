/** How Herald's processes live and end together: lock files, the launcher's pipe, its watchdog. */
export { LAUNCHER_PIPE_ENV, launcherPipeSpawnOptions, watchLauncherPipe } from "./launcher-pipe.js";
export { judgeLock, LockHeldError, PidLock } from "./pid-lock.js";
export type { AcquireOptions, LockHolder, LockRecord, LockVerdict } from "./pid-lock.js";
export { isSameProcess, probeProcess } from "./process-info.js";
export type { ProcessProbe } from "./process-info.js";
export { Watchdog } from "./watchdog-link.js";
export type { WatchdogOptions } from "./watchdog-link.js";
