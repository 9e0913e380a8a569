// drive.mjs is a front-end's side of aria2's JSON-RPC, for
// e2e/aria2rpc_test.go: through the aria2 client library (the npm package
// "aria2", pinned in package-lock.json), it runs one scenario against a
// server, aria2c or idmd, and prints one JSON document of everything it
// saw: each answer, each error and each notification, in order.
//
//   node drive.mjs CONFIG
//
// CONFIG is JSON: {"port": P, "secret": S, "slow": [3 URLs], "fast": [3
// URLs], "dir": D, "out": NAME, "timeoutMs": T}. The slow URLs are one
// file, so slow that the pause, the unpause and the remove come in the
// middle of its download; the fast ones are the same file, downloaded
// to the end into D under NAME.
//
// The scenario: getVersion over HTTP, with the right secret and a wrong
// one; then over a WebSocket: addUri of the slow mirrors, followed with
// tellStatus until its size is known, tellActive, getGlobalStat; pause,
// unpause, remove, each followed by the notification it brings and
// tellStatus; addUri of the fast mirrors with dir and out, followed to
// its end; tellStopped and getGlobalStat.
//
// Exit status 0 when every step was answered as the scenario needs, 1
// otherwise, with "failure" saying which; the document is printed either
// way. Every message sent and received goes to standard error.
import Aria2 from "aria2";

const cfg = JSON.parse(process.argv[2]);
const timeoutMs = cfg.timeoutMs || 60000;
const pollMs = 100;

const transcript = { steps: [], notifications: [], gids: {}, polls: {} };

// The keys AriaNg asks for in its task lists, BitTorrent ones included:
// a server answers those that apply and leaves out the rest.
const listKeys = [
  "gid", "totalLength", "completedLength", "uploadSpeed", "downloadSpeed",
  "connections", "numSeeders", "seeder", "status", "errorCode",
  "verifiedLength", "verifyIntegrityPending", "files", "bittorrent", "infoHash",
];

const log = (dir, m) => {
  const s = JSON.stringify(m);
  process.stderr.write(`${new Date().toISOString()} ${dir} ${s.length > 400 ? s.slice(0, 400) + "..." : s}\n`);
};

function client(secret) {
  const c = new Aria2({ host: "127.0.0.1", port: cfg.port, secret, path: "/jsonrpc" });
  c.on("output", (m) => log(">", m));
  c.on("input", (m) => log("<", m));
  // An answer that is not JSON: without a listener, the library's
  // "error" event would end the process.
  c.on("error", (e) => log("!", String(e && e.message ? e.message : e)));
  return c;
}

const aria2 = client(cfg.secret);

// Notifications as they came over the WebSocket, and a count of each
// kind for each gid, through the library's own events.
const seen = new Map();
let wake = () => {};
aria2.on("input", (m) => {
  for (const o of Array.isArray(m) ? m : [m]) {
    if (o && o.method !== undefined && o.id === undefined) {
      transcript.notifications.push({ method: o.method, params: o.params });
    }
  }
});
for (const name of [
  "onDownloadStart", "onDownloadPause", "onDownloadStop",
  "onDownloadComplete", "onDownloadError", "onBtDownloadComplete",
]) {
  aria2.on(name, (params) => {
    const gid = params && params[0] && params[0].gid;
    const k = `${name} ${gid}`;
    seen.set(k, (seen.get(k) || 0) + 1);
    wake();
  });
}

function timeout(what, ms = timeoutMs) {
  let timer;
  const p = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return { p, clear: () => clearTimeout(timer) };
}

// notified waits until gid has had n notifications of kind name.
async function notified(name, gid, n = 1) {
  const t = timeout(`${name} number ${n} for ${gid}`);
  try {
    while ((seen.get(`${name} ${gid}`) || 0) < n) {
      await Promise.race([new Promise((r) => (wake = r)), t.p]);
    }
  } finally {
    t.clear();
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// call makes one call through c and records it as step.
async function call(step, method, params, c = aria2) {
  const entry = {
    step, method,
    transport: c.socket && c.socket.readyState === 1 ? "websocket" : "http",
  };
  transcript.steps.push(entry);
  const t = timeout(`answer to ${method}`);
  try {
    entry.result = await Promise.race([c.call(method, ...params), t.p]);
    return entry.result;
  } catch (e) {
    entry.error = { code: e.code, message: e.message };
    throw new Error(`${step}: ${method}: ${e.message}`);
  } finally {
    t.clear();
  }
}

// poll calls tellStatus on gid until done holds for its answer, and
// records only that last answer, as step; the statuses on the way are
// kept in polls[step].
async function poll(step, gid, done) {
  const statuses = (transcript.polls[step] = []);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await aria2.call("tellStatus", gid);
    if (statuses[statuses.length - 1] !== st.status) statuses.push(st.status);
    if (done(st)) {
      transcript.steps.push({ step, method: "tellStatus", transport: "websocket", result: st });
      return st;
    }
    if (Date.now() > deadline) {
      throw new Error(`${step}: tellStatus ${gid} never as wanted; statuses seen ${statuses.join(", ")}`);
    }
    await sleep(pollMs);
  }
}

async function scenario() {
  await call("version", "getVersion", []);
  const intruder = client("not-the-secret");
  try {
    await call("unauthorized", "getVersion", [], intruder);
    throw new Error("unauthorized: getVersion with a wrong secret was answered");
  } catch (e) {
    if (!transcript.steps[transcript.steps.length - 1].error) throw e;
  }

  const t = timeout("WebSocket open");
  try {
    await Promise.race([aria2.open(), t.p]);
  } finally {
    t.clear();
  }

  const gid1 = await call("add", "addUri", [cfg.slow]);
  transcript.gids.gid1 = gid1;
  await notified("onDownloadStart", gid1);
  await poll("active", gid1, (st) => st.status === "active" && st.totalLength !== "0");
  await call("active keys", "tellStatus", [gid1, ["gid", "status", "totalLength", "completedLength", "downloadSpeed", "connections"]]);
  await call("active list", "tellActive", [listKeys]);
  await call("active stat", "getGlobalStat", []);

  await call("pause", "pause", [gid1]);
  await notified("onDownloadPause", gid1);
  await call("paused", "tellStatus", [gid1]);
  await call("paused list", "tellWaiting", [0, 1000, listKeys]);
  await call("paused stat", "getGlobalStat", []);

  await call("unpause", "unpause", [gid1]);
  await notified("onDownloadStart", gid1, 2);
  await poll("unpaused", gid1, (st) => st.status === "active");

  await call("remove", "remove", [gid1]);
  await notified("onDownloadStop", gid1);
  await call("removed", "tellStatus", [gid1]);
  await call("removed stat", "getGlobalStat", []);

  const gid2 = await call("add again", "addUri", [cfg.fast, { dir: cfg.dir, out: cfg.out }]);
  transcript.gids.gid2 = gid2;
  await poll("complete", gid2, (st) => st.status !== "active" && st.status !== "waiting");
  await notified("onDownloadComplete", gid2);
  await call("stopped list", "tellStopped", [-1, 1000, listKeys]);
  await call("end stat", "getGlobalStat", []);
}

let status = 0;
try {
  await scenario();
} catch (e) {
  transcript.failure = e.message;
  status = 1;
}
if (aria2.socket && aria2.socket.readyState === 1) {
  const t = timeout("WebSocket close", 5000);
  await Promise.race([aria2.close(), t.p]).catch(() => {});
  t.clear();
}
process.stdout.write(JSON.stringify(transcript, null, 1) + "\n", () => process.exit(status));
