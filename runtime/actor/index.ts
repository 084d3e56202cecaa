export { Actor } from "./actor.js";
export type { ActorContext, ActorFactory } from "./actor.js";
export type { ActorControl, ActorCounters, ActorInit } from "./protocol.js";
