import assert from "node:assert/strict";
import { DEFAULT_CONFIG, loadConfig } from "../chat/config.ts";

Deno.test("loadConfig uses the documented defaults for an empty environment", () => {
  const config = loadConfig({});
  assert.deepEqual(config, { ...DEFAULT_CONFIG, allowedOrigins: [] });
  assert.equal(config.port, 8000);
  assert.equal(config.hostname, "0.0.0.0");
  assert.equal(config.heartbeatIntervalMs, 10_000);
  assert.equal(config.heartbeatTimeoutMs, 30_000);
  assert.equal(config.maxConnections, 10_000);
  assert.equal(config.maxMessageBytes, 16_384);
  assert.equal(config.maxBufferedBytes, 1_048_576);
  assert.deepEqual(config.allowedOrigins, []);
  assert.equal(config.logLevel, "info");
  assert.equal(config.historyMaxBytes, 64 * 1024 * 1024);
  assert.equal(config.roomTtlS, 7 * 86_400);
  assert.equal(config.roomsPerIpPerMin, 60);
  assert.equal(config.replayMaxBytes, 256 * 1024);
});

Deno.test("HOST, REDIS_URL and the secrets are checked and trimmed at start", async (t) => {
  await t.step("hostnames and addresses are accepted", () => {
    for (const host of ["localhost", "chat.example.com", "127.0.0.1", "::", "::1", "0.0.0.0"]) {
      assert.equal(loadConfig({ HOST: ` ${host} ` }).hostname, host);
    }
  });
  await t.step("a Redis URL's password never shows in the error", () => {
    assert.throws(
      () => loadConfig({ REDIS_URL: "redis://user:hunter2@host:99999" }),
      (error: Error) => !error.message.includes("hunter2") && error.message.includes("***"),
    );
    assert.equal(loadConfig({ REDIS_URL: "rediss://h:6380/2" }).redisUrl, "rediss://h:6380/2");
    assert.throws(
      () => loadConfig({ REDIS_URL: "redis://h:1,redis://user:hunter2@H:1/0" }),
      (error: Error) => !error.message.includes("hunter2") && error.message.includes("***"),
    );
  });
  await t.step("a comma list of Redis URLs (shards) is kept in order, each entry trimmed", () => {
    const list = " redis://a:1 , rediss://u:p@b:2/3,redis://a:1/1 ";
    assert.equal(
      loadConfig({ REDIS_URL: list }).redisUrl,
      "redis://a:1,rediss://u:p@b:2/3,redis://a:1/1",
    );
  });
  await t.step("secrets are trimmed; empty turns the feature off", () => {
    const config = loadConfig({
      AUTH_SECRET: " s3cret\n",
      ADMIN_TOKEN: "\tadm ",
      METRICS_TOKEN: "",
    });
    assert.equal(config.authSecret, "s3cret");
    assert.equal(config.adminToken, "adm");
    assert.equal(config.metricsToken, "");
  });
});

Deno.test("loadConfig reads the resource bounds", () => {
  const config = loadConfig({
    HISTORY_MAX_BYTES: "1048576",
    ROOM_TTL_S: "3600",
    ROOMS_PER_IP_PER_MIN: "5",
    REPLAY_MAX_BYTES: "65536",
    ROOM_PRESENCE_LIMIT: "50",
    PRESENCE_WINDOW_MS: "0",
  });
  assert.equal(config.roomPresenceLimit, 50);
  assert.equal(config.presenceWindowMs, 0);
  assert.equal(loadConfig({}).presenceWindowMs, 1000);
  assert.equal(config.historyMaxBytes, 1_048_576);
  assert.equal(config.roomTtlS, 3600);
  assert.equal(config.roomsPerIpPerMin, 5);
  assert.equal(config.replayMaxBytes, 65_536);
});

Deno.test("loadConfig treats blank values as unset", () => {
  assert.equal(loadConfig({ PORT: "", MAX_CONNECTIONS: "  " }).port, 8000);
});

Deno.test("loadConfig reads every core variable", () => {
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    HEARTBEAT_INTERVAL_MS: "50",
    HEARTBEAT_TIMEOUT_MS: "200",
    MAX_CONNECTIONS: "3",
    MAX_MESSAGE_BYTES: "1024",
    MAX_BUFFERED_BYTES: "4096",
    ALLOWED_ORIGINS: "https://a.example, http://b.example:8080/",
    LOG_LEVEL: "WARN",
  });
  assert.equal(config.port, 0);
  assert.equal(config.hostname, "127.0.0.1");
  assert.equal(config.heartbeatIntervalMs, 50);
  assert.equal(config.heartbeatTimeoutMs, 200);
  assert.equal(config.maxConnections, 3);
  assert.equal(config.maxMessageBytes, 1024);
  assert.equal(config.maxBufferedBytes, 4096);
  assert.deepEqual(config.allowedOrigins, ["https://a.example", "http://b.example:8080"]);
  assert.equal(config.logLevel, "warn");
});

Deno.test("loadConfig accepts * as any origin", () => {
  assert.deepEqual(loadConfig({ ALLOWED_ORIGINS: "*" }).allowedOrigins, ["*"]);
});

Deno.test("loadConfig refuses bad values with a RangeError naming variable and value", async (t) => {
  const cases: [string, Record<string, string>, string, string][] = [
    ["PORT=abc", { PORT: "abc" }, "PORT", "abc"],
    ["PORT out of range", { PORT: "70000" }, "PORT", "70000"],
    ["PORT with a fraction", { PORT: "80.5" }, "PORT", "80.5"],
    ["PORT in hex", { PORT: "0x50" }, "PORT", "0x50"],
    ["negative MAX_CONNECTIONS", { MAX_CONNECTIONS: "-1" }, "MAX_CONNECTIONS", "-1"],
    ["zero MAX_CONNECTIONS", { MAX_CONNECTIONS: "0" }, "MAX_CONNECTIONS", "0"],
    [
      "negative HEARTBEAT_INTERVAL_MS",
      { HEARTBEAT_INTERVAL_MS: "-5" },
      "HEARTBEAT_INTERVAL_MS",
      "-5",
    ],
    ["negative MAX_MESSAGE_BYTES", { MAX_MESSAGE_BYTES: "-100" }, "MAX_MESSAGE_BYTES", "-100"],
    ["text MAX_BUFFERED_BYTES", { MAX_BUFFERED_BYTES: "lots" }, "MAX_BUFFERED_BYTES", "lots"],
    [
      "timeout below the interval",
      { HEARTBEAT_INTERVAL_MS: "1000", HEARTBEAT_TIMEOUT_MS: "500" },
      "HEARTBEAT_TIMEOUT_MS",
      "500",
    ],
    [
      "timeout below the default interval",
      { HEARTBEAT_TIMEOUT_MS: "5000" },
      "HEARTBEAT_TIMEOUT_MS",
      "5000",
    ],
    ["unknown LOG_LEVEL", { LOG_LEVEL: "loud" }, "LOG_LEVEL", "loud"],
    ["unknown ROOT_WS", { ROOT_WS: "broadcast" }, "ROOT_WS", "broadcast"],
    ["HOST with a space", { HOST: "my host" }, "HOST", "my host"],
    ["HOST with a scheme", { HOST: "http://0.0.0.0" }, "HOST", "http://0.0.0.0"],
    ["REDIS_URL of another scheme", { REDIS_URL: "http://x:6379" }, "REDIS_URL", "http://x:6379"],
    ["REDIS_URL without a host", { REDIS_URL: "redis://" }, "REDIS_URL", "redis://"],
    [
      "REDIS_URL with one bad shard",
      { REDIS_URL: "redis://a:1, http://b:2" },
      "REDIS_URL",
      "http://b:2",
    ],
    [
      "REDIS_URL with a Redis twice",
      { REDIS_URL: "redis://a:1,redis://A:1/0" },
      "REDIS_URL",
      "redis://A:1/0",
    ],
    [
      "REDIS_URL with an empty entry",
      { REDIS_URL: "redis://a:1,,redis://b:1" },
      "REDIS_URL",
      "redis://a:1,,redis://b:1",
    ],
    ["blank AUTH_SECRET", { AUTH_SECRET: "   " }, "AUTH_SECRET", JSON.stringify("   ")],
    ["blank ADMIN_TOKEN", { ADMIN_TOKEN: " \n" }, "ADMIN_TOKEN", JSON.stringify(" \n")],
    ["blank METRICS_TOKEN", { METRICS_TOKEN: "\t" }, "METRICS_TOKEN", JSON.stringify("\t")],
    ["tiny HISTORY_MAX_BYTES", { HISTORY_MAX_BYTES: "100" }, "HISTORY_MAX_BYTES", "100"],
    ["ROOM_TTL_S under a minute", { ROOM_TTL_S: "5" }, "ROOM_TTL_S", "5"],
    ["zero ROOMS_PER_IP_PER_MIN", { ROOMS_PER_IP_PER_MIN: "0" }, "ROOMS_PER_IP_PER_MIN", "0"],
    ["tiny REPLAY_MAX_BYTES", { REPLAY_MAX_BYTES: "10" }, "REPLAY_MAX_BYTES", "10"],
    ["bad ALLOWED_ORIGINS", { ALLOWED_ORIGINS: "not a url" }, "ALLOWED_ORIGINS", "not a url"],
  ];
  for (const [name, env, variable, value] of cases) {
    await t.step(name, () => {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => {
          assert.ok(error instanceof RangeError, `not a RangeError: ${error}`);
          assert.ok(error.message.includes(variable), error.message);
          assert.ok(error.message.endsWith(`: ${value}`), error.message);
          assert.ok(!error.message.includes("\n"), "message is one line");
          assert.ok(!error.message.endsWith("."), "message has no final period");
          return true;
        },
      );
    });
  }
});

Deno.test("ALLOWED_ORIGINS refuses entries that are not http(s) origins, naming the entry", async (t) => {
  const cases: [string, string, string][] = [
    ["a host and port without a scheme", "localhost:3000", "localhost:3000"],
    ["one bad entry among good ones", "https://a.example, localhost:3000", "localhost:3000"],
    ["the null origin", "null", "null"],
    ["a file URL (its origin is null)", "file:///srv/chat.html", "file:///srv/chat.html"],
    ["a scheme without a host", "chat:lobby", "chat:lobby"],
  ];
  for (const [name, raw, entry] of cases) {
    await t.step(name, () => {
      assert.throws(() => loadConfig({ ALLOWED_ORIGINS: raw }), (error: unknown) => {
        assert.ok(error instanceof RangeError, `not a RangeError: ${error}`);
        assert.match(error.message, /^Invalid ALLOWED_ORIGINS \(.+\): /);
        assert.ok(error.message.endsWith(`: ${entry}`), error.message);
        return true;
      });
    });
  }
  await t.step("http and https origins are kept in their normal form", () => {
    const config = loadConfig({ ALLOWED_ORIGINS: "HTTPS://A.example:443, http://b.example:8080/" });
    assert.deepEqual(config.allowedOrigins, ["https://a.example", "http://b.example:8080"]);
  });
});

Deno.test("MAX_TOKEN_LIFETIME_S caps token lifetimes at 30 days unless set", async (t) => {
  await t.step("the default is 30 days", () => {
    assert.equal(DEFAULT_CONFIG.maxTokenLifetimeS, 2_592_000);
    assert.equal(loadConfig({}).maxTokenLifetimeS, 2_592_000);
  });
  await t.step("a value is read", () => {
    assert.equal(loadConfig({ MAX_TOKEN_LIFETIME_S: "3600" }).maxTokenLifetimeS, 3600);
  });
  for (const raw of ["0", "-1", "1e300", "abc", "315360001"]) {
    await t.step(`${raw} is refused`, () => {
      assert.throws(() => loadConfig({ MAX_TOKEN_LIFETIME_S: raw }), {
        name: "RangeError",
        message: `Invalid MAX_TOKEN_LIFETIME_S (an integer from 1 to 315360000): ${raw}`,
      });
    });
  }
});
