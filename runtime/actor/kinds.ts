/**
 * Where each actor kind's code lives. Loaded lazily inside the worker so a thread only loads
 * the kind it runs.
 */
import type { ActorKind } from "../config/index.js";
import type { ActorFactory } from "./actor.js";

const loaders: Record<ActorKind, () => Promise<{ createActor: ActorFactory }>> = {
  ingest: () => import("../../actors/ingest/index.js"),
  collector: () => import("../../actors/collector/index.js"),
  subqueue: () => import("../../actors/subqueue/index.js"),
  processor: () => import("../../actors/processor/index.js"),
  pusher: () => import("../../actors/pusher/index.js"),
};

export async function loadActorFactory(kind: ActorKind): Promise<ActorFactory> {
  const loader = loaders[kind];
  if (!loader) throw new Error(`unknown actor kind "${kind}"`);
  return (await loader()).createActor;
}
