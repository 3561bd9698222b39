# Deno's official image, pinned to the version the project is tested with.
FROM denoland/deno:2.9.6

WORKDIR /app

# One COPY: the server has no npm or JSR dependencies, so there is no dependency
# layer that copying deno.json first could keep cached; any change rebuilds from
# here. .dockerignore leaves out what the server never reads (tests, bench, docs,
# tools, .ci, deploy, data, .git); tests/package_test.ts checks that the whole
# module graph of main.ts and static/ stay in. `deno cache` transpiles that graph
# into DENO_DIR, so the container starts without compiling TypeScript.
COPY . .
RUN deno cache --unstable-kv main.ts \
  && mkdir -p /app/data \
  && chown -R deno:deno /app/data

# The image ships a non-root "deno" user; DENO_DIR (/deno-dir) is readable by it.
USER deno

ENV PORT=8000 \
    HOST=0.0.0.0 \
    KV_PATH=/app/data/chat.kv
EXPOSE 8000
VOLUME ["/app/data"]

# The image has no curl: ask Deno itself. The exec form expands no variables,
# so the script reads PORT; /healthz is 503 while the engine is degraded.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD ["deno", "eval", "const port = Deno.env.get('PORT') || '8000'; const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null); await r?.body?.cancel(); Deno.exit(r?.ok ? 0 : 1)"]

# Explicit permissions: network, environment, reading the app, writing the KV folder.
CMD ["run", "--allow-net", "--allow-env", "--allow-read=/app", "--allow-write=/app/data", "--unstable-kv", "main.ts"]
