// The chat page: one WebSocket to /ws (see live.py for the messages), plain DOM, no framework.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  socket: null, session: null, offset: 0, nextId: 1, pending: new Map(),
  userId: null, personality: null, retry: 500,
};

// -- rendering ---------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function addMessage(log, role, text) {
  const box = element("div", "msg " + role);
  box.appendChild(element("p", null, text));
  log.appendChild(box);
  log.scrollTop = log.scrollHeight;
  return box;
}

function say(role, text) { return addMessage($("log"), role, text); }

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

function setLive(live) {
  for (const id of ["message", "send", "end"]) $(id).disabled = !live;
}

function showAffinity(affinity) {
  $("affinity-level").textContent = affinity.level;
  $("affinity-points").textContent = String(affinity.points);
  $("affinity-meter").value = affinity.points;
}

function fillList(list, items, empty, render) {
  list.replaceChildren();
  if (!items.length) list.appendChild(element("li", "muted", empty));
  for (const item of items) list.appendChild(render(item));
}

function showRecall(recall) {
  showAffinity(recall.affinity);
  $("recall-who").textContent = state.personality || "the personality";
  fillList($("recall-facts"), recall.facts, "nothing yet", (fact) => {
    const li = element("li", null, fact.key.replace(/_/g, " ") + ": " + fact.value);
    li.appendChild(element("small", null, fact.category.replace(/_/g, " ")));
    return li;
  });
  fillList($("recall-episodes"), recall.episodes, "nothing yet", (episode) => {
    const li = element("li", "episode", episode.title);
    li.appendChild(element("small", null, episode.summary + " · " + episode.sentiment
                                         + " · importance " + episode.importance));
    return li;
  });
}

const when = (iso) => new Date(iso).toLocaleString([], {dateStyle: "medium", timeStyle: "short"});

function showArchive(items) {
  fillList($("archive-list"), items, "none yet", (item) => {
    const li = element("li");
    const button = element("button", null, item.first_message || "(no messages)");
    button.type = "button";
    button.dataset.session = item.session_id;
    button.appendChild(element("small", null, when(item.ended_at) + " · " + item.personality + " · "
                                            + item.message_count + " messages · " + item.reason));
    button.addEventListener("click", () => send({type: "open", session_id: item.session_id}));
    li.appendChild(button);
    return li;
  });
}

function showConversation(conversation) {
  $("archive-view-title").textContent = "Conversation with " + conversation.personality;
  $("archive-meta").textContent = when(conversation.started_at) + " – " + when(conversation.ended_at)
    + " · ended: " + conversation.reason;
  const log = $("archive-messages");
  log.replaceChildren();
  for (const message of conversation.messages) addMessage(log, message.role, message.content);
  if (!conversation.messages.length) addMessage(log, "system", "No messages.");
  if (!$("archive-view").open) $("archive-view").showModal();
}

function showContext(context, summary) {
  if (!context) return;
  const covered = context.summary ? "a summary of the first " + context.through + " messages, then " : "";
  $("context-info").textContent = "The model saw " + covered + context.messages.length
    + " messages: " + context.tokens + " of " + context.budget + " tokens.";
  const text = summary ? summary.text : context.summary;
  $("summary-text").hidden = !text;
  if (text) $("summary-text").textContent = "Running summary: " + text;
}

// -- the session's deadlines --------------------------------------------------

function showSession(session) {
  state.session = session;
  state.offset = session.server_now_ms - Date.now();
  const today = new Date().toDateString();
  const at = (ms) => new Date(ms).toDateString() === today ? new Date(ms).toLocaleTimeString()
    : new Date(ms).toLocaleString([], {month: "short", day: "numeric", hour: "numeric",
                                       minute: "2-digit", second: "2-digit"});
  $("absolute-deadline").textContent = at(session.absolute_deadline_ms);
  $("idle-deadline").textContent = at(session.idle_deadline_ms);
  tick();
}

function remaining(ms) {
  const seconds = Math.max(0, ms / 1000);
  if (seconds < 60) return seconds.toFixed(1) + " s";
  const whole = Math.floor(seconds);
  return Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0");
}

function tick() {
  const session = state.session;
  if (!session) return;
  const now = Date.now() + state.offset;
  const left = Math.min(session.idle_deadline_ms, session.absolute_deadline_ms) - now;
  $("idle-countdown").textContent = left > 0 ? remaining(left) : "expiring…";
  $("idle-countdown").classList.toggle("soon", left < 10000);
  $("idle-bar").value = Math.max(0, Math.min(1, left / 1000 / session.max_idle));
}
setInterval(tick, 200);

function sessionOver(text) {
  state.session = null;
  setLive(false);
  $("idle-countdown").textContent = "ended";
  $("idle-bar").value = 0;
  setStatus(text);
  say("system", text);
}

// -- the socket ----------------------------------------------------------------

function send(message) {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return false;
  state.socket.send(JSON.stringify(message));
  return true;
}

function markRefused(box, reason) {
  box.classList.remove("pending");
  box.classList.add("refused");
  box.appendChild(element("span", "note", "Not sent: " + reason));
}

const handlers = {
  started(data) {
    state.userId = data.user_id;
    state.personality = data.personality;
    showSession(data.session);
    showRecall(data.recall);
    showArchive(data.archive);
    setLive(true);
    setStatus("Chatting with " + data.personality + ".");
    say("system", "Connected to " + data.personality + ".");
    say("assistant", data.greeting);
    $("message").focus();
  },
  turn(data) {
    const box = state.pending.get(data.id);
    state.pending.delete(data.id);
    if (box) box.classList.remove("pending");
    say("assistant", data.reply);
    showAffinity(data.affinity);
    if (data.session) showSession(data.session);
    showContext(data.context, data.summary);
  },
  refused(data) {
    const box = state.pending.get(data.id);
    state.pending.delete(data.id);
    if (box) markRefused(box, data.error);
    setStatus(data.error, true);
    if (!state.session || /expired or ended/.test(data.error)) sessionOver(data.error);
  },
  ended(data) {
    const why = {idle: "The session timed out after being idle.",
                 absolute: "The session reached its time limit.",
                 ended: "Session ended and archived."}[data.reason] || "The session ended.";
    sessionOver(why + " Start again to continue; what " + (state.personality || "the personality")
                + " knows of you is kept.");
  },
  memory(data) {
    showRecall(data.recall);
    showArchive(data.archive);
  },
  conversation(data) { showConversation(data.conversation); },
  error(data) { setStatus(data.error, true); },
};

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + "/ws");
  state.socket = socket;
  socket.addEventListener("open", () => {
    state.retry = 500;
    $("connection").textContent = "online";
    $("connection").classList.add("online");
    $("start").disabled = false;
  });
  socket.addEventListener("message", (event) => {
    let data;
    try { data = JSON.parse(event.data); } catch (error) { setStatus("The server sent something unreadable.", true); return; }
    const handle = handlers[data.type];
    if (handle) handle(data);
  });
  socket.addEventListener("close", () => {
    $("connection").textContent = "offline, reconnecting…";
    $("connection").classList.remove("online");
    for (const box of state.pending.values()) markRefused(box, "the connection to the server was lost.");
    state.pending.clear();
    if (state.session) sessionOver("The connection to the server was lost; start again when it is back.");
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 8000);
  });
}

// -- the forms -------------------------------------------------------------------

$("start-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const userId = $("user").value.trim();
  const personality = $("personality").value.trim();
  if (!userId || !personality) { setStatus("Give your name and a personality to start.", true); return; }
  state.personality = personality;
  if (!send({type: "start", user_id: userId, personality})) setStatus("Not connected to the server yet.", true);
});

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text) return;
  const box = say("user", text);
  const id = state.nextId++;
  if (!send({type: "say", id, text})) { markRefused(box, "not connected to the server."); return; }
  box.classList.add("pending");
  state.pending.set(id, box);
  $("message").value = "";
});

$("end").addEventListener("click", () => { send({type: "end"}); });
$("archive-close").addEventListener("click", () => $("archive-view").close());

$("start").disabled = true;
connect();
