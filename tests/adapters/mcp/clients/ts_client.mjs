// A client written with the official TypeScript SDK (@modelcontextprotocol/sdk), for the proxy tests.
//
// Usage: node ts_client.mjs <command> [args...]   (MCP_SDK_DIR names the installed SDK package folder)
// It connects to the server started by the command, exercises what server-everything offers (tools,
// progress, sampling, elicitation, roots, completion, logging, tasks) and prints one JSON summary.
import { pathToFileURL } from "node:url";
import path from "node:path";

const sdk = (rel) => import(pathToFileURL(path.join(process.env.MCP_SDK_DIR, "dist/esm", rel)).href);
const { Client } = await sdk("client/index.js");
const { StdioClientTransport } = await sdk("client/stdio.js");
const types = await sdk("types.js");

const [command, ...args] = process.argv.slice(2);
const out = { logs: 0, notes: [], sampled: [], elicited: [] };
const client = new Client(
  { name: "tether-ts-test", version: "1.0.0" },
  { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } },
);
client.setRequestHandler(types.CreateMessageRequestSchema, async (request) => {
  out.sampled.push(request.params.messages[0].content.text);
  return { role: "assistant", content: { type: "text", text: "forty-two" }, model: "scripted", stopReason: "endTurn" };
});
client.setRequestHandler(types.ElicitRequestSchema, async (request) => {
  out.elicited.push(request.params.message);
  return { action: "accept", content: { name: "Ana", check: true } };
});
client.setRequestHandler(types.ListRootsRequestSchema, async () => ({ roots: [{ uri: "file:///tmp/ts-roots", name: "ts-roots" }] }));
client.setNotificationHandler(types.LoggingMessageNotificationSchema, async () => { out.logs += 1; });
client.setNotificationHandler(types.ToolListChangedNotificationSchema, async (n) => { out.notes.push(n.method); });

const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
await client.connect(transport);
out.server = client.getServerVersion();
out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
out.sum = (await client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } })).content[0].text;
const progress = [];
await client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 1, steps: 3 } }, undefined, {
  onprogress: (p) => progress.push(p.progress),
});
out.progress = progress;
out.sampling = JSON.stringify((await client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "Six times seven?" } })).content);
out.elicitation = JSON.stringify((await client.callTool({ name: "trigger-elicitation-request", arguments: {} })).content);
out.roots = JSON.stringify((await client.callTool({ name: "get-roots-list", arguments: {} })).content);
out.structured = (await client.callTool({ name: "get-structured-content", arguments: { location: "Chicago" } })).structuredContent;
out.denied = (await client.callTool({ name: "gzip-file-as-resource", arguments: {} })).content[0].text;
out.complete = (await client.complete({ ref: { type: "ref/prompt", name: "completable-prompt" }, argument: { name: "department", value: "S" } })).completion.values;
await client.setLoggingLevel("debug");
await client.callTool({ name: "toggle-simulated-logging", arguments: {} });
for (let i = 0; i < 80 && out.logs === 0; i++) await new Promise((r) => setTimeout(r, 100));
// A task-augmented call (SEP-1686): created, polled, and its result fetched through the proxy.
const stream = client.experimental.tasks.callToolStream({ name: "simulate-research-query", arguments: { topic: "tides" } }, undefined, {
  task: { ttl: 60000 },
});
out.task = [];
for await (const message of stream) {
  out.task.push(message.type);
  if (message.type === "result") out.taskResult = JSON.stringify(message.result.content).slice(0, 400);
  if (message.type === "error") out.taskError = String(message.error);
}
await client.close();
process.stdout.write(JSON.stringify(out) + "\n");
