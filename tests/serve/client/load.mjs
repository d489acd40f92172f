// A bounded load test for `kvpack serve` (docs/results.md's serve figures; server_test.cpp runs
// it small): CLIENTS concurrent clients, each sending REQUESTS streamed chat requests that share
// one system prompt of about PREFIX tokens, with a user message of its own. Plain fetch, so what
// is measured is the server. Every response must be a well-formed stream ending in [DONE] with a
// usage chunk; a lost or malformed one is counted and makes the exit status 1.
// Usage: node load.mjs BASE_URL [CLIENTS=32] [REQUESTS=4] [PREFIX=1000] [MAX_TOKENS=32] [LIMIT_S=300]
const [base, clients = 32, perClient = 4, prefix = 1000, maxTokens = 32, limitS = 300] = process.argv
  .slice(2)
  .map((x, i) => (i === 0 ? x : Number(x)));

async function post(path, body) {
  const r = await fetch(base + path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
  return r.json();
}

// A system prompt of about `prefix` tokens, measured with the server's own tokenizer.
async function systemPrompt() {
  const sentence = "The quick brown fox jumps over the lazy dog near the river bank. ";
  const per = (await post("/tokenize", { content: sentence })).tokens.length;
  return sentence.repeat(Math.max(1, Math.round(prefix / per)));
}

// The largest kv_cache_shared_bytes /metrics reports while streams are open: pages held by
// several running sequences at once (the shared system prompt). Sampled when a stream's first
// token arrives, so the sample falls inside the window where the requests run side by side.
async function sampleShared(stats) {
  try {
    const text = await (await fetch(base + "/metrics")).text();
    for (const m of text.matchAll(/^kvpack:kv_cache_shared_bytes\{[^}]*\} (\S+)$/gm)) {
      stats.sharedMax = Math.max(stats.sharedMax, Number(m[1]));
    }
  } catch (e) {
    stats.failed.push(`metrics: ${e}`);
  }
}

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : 0;
}

async function one(system, client, i, stats) {
  const t0 = performance.now();
  const body = {
    messages: [{ role: "system", content: system }, { role: "user", content: `Client ${client} asks question ${i}.` }],
    max_tokens: maxTokens, stream: true, stream_options: { include_usage: true }, seed: client * 1000 + i,
  };
  const r = await fetch(base + "/v1/chat/completions", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
  if (r.status !== 200) { stats.failed.push(`status ${r.status}: ${await r.text()}`); return; }
  const dec = new TextDecoder();
  let buf = "", first = 0, usage = null, done = false, bytes = 0;
  for await (const chunk of r.body) {
    bytes += chunk.length;
    buf += dec.decode(chunk, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k); buf = buf.slice(k + 2);
      if (!ev.startsWith("data: ")) throw new Error(`malformed event: ${ev}`);
      if (ev === "data: [DONE]") { done = true; continue; }
      const j = JSON.parse(ev.slice(6));
      if (j.error) throw new Error(JSON.stringify(j.error));
      if (j.usage) usage = j.usage;
      if (!first && j.choices.length && j.choices[0].delta.content) {
        first = performance.now();
        sampleShared(stats);  // mid-stream: this request's sequence is running, with its neighbours
      }
    }
  }
  if (!done || !usage || buf.length) { stats.failed.push(`incomplete stream (done ${done}, usage ${!!usage})`); return; }
  stats.ttft.push(((first || performance.now()) - t0) / 1000);
  stats.tokens += usage.completion_tokens;
  stats.cached += usage.prompt_tokens_details.cached_tokens;
  stats.prompt += usage.prompt_tokens;
  stats.bytes += bytes;
  stats.ok += 1;
}

const system = await systemPrompt();
const stats = { ok: 0, failed: [], ttft: [], tokens: 0, cached: 0, prompt: 0, bytes: 0, sharedMax: 0 };
const t0 = performance.now();
const timer = setTimeout(() => { console.error("load: time limit reached"); process.exit(2); }, limitS * 1000);
await Promise.all(Array.from({ length: clients }, async (_, c) => {
  for (let i = 0; i < perClient; i++) {
    try { await one(system, c, i, stats); } catch (e) { stats.failed.push(String(e)); }
  }
}));
clearTimeout(timer);
const s = (performance.now() - t0) / 1000;
const out = {
  clients, requests: clients * perClient, ok: stats.ok, failed: stats.failed.length, seconds: s,
  requests_per_s: stats.ok / s, tokens_per_s: stats.tokens / s,
  ttft_p50_s: percentile(stats.ttft, 50), ttft_p99_s: percentile(stats.ttft, 99),
  prompt_tokens: stats.prompt, cached_prompt_tokens: stats.cached, bytes_received: stats.bytes,
  shared_bytes_max: stats.sharedMax,
  failures: stats.failed.slice(0, 5),
};
console.log(JSON.stringify(out));
process.exit(stats.failed.length ? 1 : 0);
