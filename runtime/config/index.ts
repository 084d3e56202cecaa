/** The config folder's public face: load and validate `cluster.config.json`. */
export { ACTOR_KINDS, configSchema } from "./schema.js";
export type {
  ActorKind,
  ChannelConfig,
  FanoutTopicConfig,
  HeraldConfig,
  NatsTopicConfig,
  NodeConfig,
  SingleTopicConfig,
  TopicConfig,
  WebhookTopicConfig,
} from "./schema.js";
export { channelsOf, isFanout, MAX_FANOUT_CHANNELS } from "./topics.js";
export { DEFAULT_CONFIG_FILE, loadConfig, parseConfig } from "./load.js";
export type { LoadedConfig } from "./load.js";
export { ConfigError, RulesError, formatPath } from "./errors.js";
export type { ConfigIssue } from "./errors.js";
export { CONFIG_SCHEMA_FILE, configJsonSchema } from "./write-schema.js";
