// Drives a running `kvpack serve` with the official OpenAI client (tests/serve/server_test.cpp
// compares what it prints with `kvpack run`). Usage: node openai_check.mjs BASE_URL REQUESTS_JSON
// where REQUESTS_JSON is an array of {"kind": "chat"|"completion", "stream": bool, "params": {...}}.
// Prints one JSON array: per request its text, finish_reason, usage and event count.
import OpenAI from "openai";

const [baseURL, requestsJson] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60000 });
const results = [];
for (const r of JSON.parse(requestsJson)) {
  const api = r.kind === "chat" ? client.chat.completions : client.completions;
  const out = { text: "", finish_reason: null, usage: null, events: 0, id: null };
  if (r.stream) {
    const stream = await api.create({ ...r.params, stream: true, stream_options: { include_usage: true } });
    for await (const chunk of stream) {
      out.events += 1;
      out.id = chunk.id;
      if (chunk.usage) out.usage = chunk.usage;
      for (const c of chunk.choices) {
        out.text += r.kind === "chat" ? (c.delta.content ?? "") : c.text;
        if (c.finish_reason) out.finish_reason = c.finish_reason;
      }
    }
  } else {
    const resp = await api.create(r.params);
    const c = resp.choices[0];
    out.text = r.kind === "chat" ? c.message.content : c.text;
    out.finish_reason = c.finish_reason;
    out.usage = resp.usage;
    out.id = resp.id;
  }
  results.push(out);
}
console.log(JSON.stringify(results));
