import { once } from "node:events";
import type pg from "pg";
import { setTimeout as sleep } from "node:timers/promises";
import type { EnvReader } from "../../platform/config.js";
import type { Logger } from "../../platform/log.js";
import type { OutboxEvent } from "../events/outbox.js";
import { projectorBlockMs, startProjector } from "../events/projector.js";
import { observeOutbox } from "../events/outbox-metrics.js";
import { pruneOutbox } from "../events/outbox-retention.js";
import { startOutboxRelay, type OutboxRelay } from "../events/relay.js";
import { scheduleAcrossInstances } from "./cluster-schedule.js";
import { migrate } from "./migrations.js";
import { createPostgresPool, postgresConfigFromEnv, type PostgresConfig, type PostgresPool } from "./postgres.js";
import { createRedis, redisCommandTimeoutFromEnv, redisUrlFromEnv, type Redis } from "./redis.js";

/** Where a CQRS service keeps its state: PostgreSQL (the truth) and Redis (the read model). */
export interface DataStoresConfig {
  postgres: PostgresConfig;
  redisUrl: string;
  /** How long any Redis command may take, in ms (`REDIS_COMMAND_TIMEOUT_MS`, default 2000). */
  redisCommandTimeoutMs: number;
  /** How often the projection trims consumed entries from its stream, in ms; 0 never. */
  streamTrimIntervalMs: number;
  /** How long published outbox rows are kept, in ms; 0 keeps them forever. */
  outboxRetentionMs: number;
  /** How often one of the instances prunes the outbox, in ms. */
  outboxPruneIntervalMs: number;
  /** How long an entry stays pending with a consumer before another claims it (and it is delivered again), in ms. */
  eventsClaimIdleMs: number;
  /** Deliveries after which an event that keeps failing goes to `<stream>:dead`. */
  eventsMaxDeliveries: number;
}

export function dataStoresConfigFromEnv(env: EnvReader): DataStoresConfig {
  return {
    postgres: postgresConfigFromEnv(env),
    redisUrl: redisUrlFromEnv(env),
    redisCommandTimeoutMs: redisCommandTimeoutFromEnv(env),
    streamTrimIntervalMs: env.int("EVENTS_TRIM_INTERVAL_MS", 10_000, { min: 0 }),
    outboxRetentionMs: env.int("OUTBOX_RETENTION_MS", 86_400_000, { min: 0 }),
    outboxPruneIntervalMs: env.int("OUTBOX_PRUNE_INTERVAL_MS", 600_000, { min: 100 }),
    eventsClaimIdleMs: env.int("EVENTS_CLAIM_IDLE_MS", 30_000, { min: 100 }),
    eventsMaxDeliveries: env.int("EVENTS_MAX_DELIVERIES", 5, { min: 1, max: 1000 }),
  };
}

export interface DataStores {
  config: DataStoresConfig;
  pool: PostgresPool;
  /** Commands, queries and the relay. */
  redis: Redis;
  /** The projection's own connection (XREADGROUP blocks it). */
  projectionRedis: Redis;
  /** Throws when PostgreSQL, without which no command works, is unreachable. */
  checkPostgres(): Promise<void>;
  close(): Promise<void>;
}

/**
 * openDataStores connects the pools and applies the schema migrations. Redis being down at start
 * is not fatal (commands work without it and the read model catches up later); PostgreSQL is.
 */
export async function openDataStores(config: DataStoresConfig, log: Logger): Promise<DataStores> {
  const pool = createPostgresPool(config.postgres, (error) => log.warn({ err: error }, "idle PostgreSQL client failed"));
  const applied = await migrate(pool);
  if (applied.length) log.info({ migrations: applied }, "schema migrated");
  let redisDown = false;
  const onRedisError = (error: Error) => {
    if (!redisDown) log.warn({ err: error }, "Redis unreachable: commands continue, the read model will catch up");
    redisDown = true;
  };
  const redis = createRedis(config.redisUrl, onRedisError, { commandTimeoutMs: config.redisCommandTimeoutMs });
  const projectionRedis = createRedis(config.redisUrl, onRedisError, { commandTimeoutMs: config.redisCommandTimeoutMs, blockMs: projectorBlockMs });
  redis.on("ready", () => {
    if (redisDown) log.info("Redis reachable again");
    redisDown = false;
  });
  // Give Redis a moment to connect so the workers do not start with a burst of warnings; a
  // Redis that is down stays a warning, not a failure.
  await Promise.race([Promise.all([once(redis, "ready"), once(projectionRedis, "ready")]), sleep(2000)]).catch(() => undefined);
  return {
    config,
    pool,
    redis,
    projectionRedis,
    async checkPostgres() {
      await pool.query("SELECT 1");
    },
    async close() {
      redis.disconnect();
      projectionRedis.disconnect();
      await pool.end();
    },
  };
}

/** EventPipeline is a service's outbox relay and read-model projection, started together. */
export interface EventPipeline {
  /** Asks the relay to publish now (after a command committed events). */
  kick(): void;
  stop(): Promise<void>;
}

/**
 * startEventPipeline relays `stream`'s outbox rows to Redis and projects them into the read model
 * with `project`, consuming as `instanceId` in the group `group` shared by the service's instances.
 * A read model Redis lost is rebuilt from `snapshot`; published rows older than the retention are
 * pruned, once per interval across the instances; the backlog is exported as metrics.
 */
export function startEventPipeline(
  stores: DataStores,
  options: {
    stream: string;
    group: string;
    instanceId: string;
    log: Logger;
    project: (redis: Redis, events: OutboxEvent[]) => Promise<void>;
    snapshot: (client: pg.PoolClient) => Promise<void>;
  },
): EventPipeline {
  const { config } = stores;
  const relay: OutboxRelay = startOutboxRelay({ pool: stores.pool, redis: stores.redis, streams: [options.stream], log: options.log, snapshot: options.snapshot });
  const pruning =
    config.outboxRetentionMs > 0
      ? scheduleAcrossInstances(stores.pool, {
          name: `outbox_prune:${options.stream}`,
          intervalMs: config.outboxPruneIntervalMs,
          log: options.log,
          run: async () => {
            const deleted = await pruneOutbox(stores.pool, [options.stream], config.outboxRetentionMs);
            if (deleted > 0) options.log.info({ stream: options.stream, deleted }, "pruned published outbox rows");
          },
        })
      : undefined;
  const stopObserving = observeOutbox(stores.pool, [options.stream]);
  const projector = startProjector({
    redis: stores.projectionRedis,
    stream: options.stream,
    group: options.group,
    consumer: options.instanceId,
    log: options.log,
    trimIntervalMs: config.streamTrimIntervalMs,
    claimIdleMs: config.eventsClaimIdleMs,
    maxDeliveries: config.eventsMaxDeliveries,
    apply: (events) => options.project(stores.redis, events),
  });
  return {
    kick: relay.kick,
    async stop() {
      pruning?.stop();
      stopObserving();
      await relay.stop();
      await projector.stop();
    },
  };
}
