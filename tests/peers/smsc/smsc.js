#!/usr/bin/env node
// SMSC simulator for hornbill's SMPP tests and benchmark.
//
// An SMPP 3.4 server on 127.0.0.1 built on node-smpp (npm `smpp`), an implementation
// independent of hornbill's own codec. It accepts binds, answers submit_sm, sends delivery
// receipts and MO messages, records and decodes what it accepted (reassembling parts), and
// misbehaves on request. An HTTP control API on a second port shows what it saw and drives
// it. README.md beside this file lists the knobs and the control calls.
'use strict';

const http = require('http');
const smpp = require('smpp');

// node-smpp decodes short_message and message_payload by its own reading of data_coding and
// turns time strings into Dates; keep the raw bytes and strings, and decode them here.
smpp.filters.message.decode = (value) => value;
smpp.filters.time.decode = (value) => value;

const ESME_RINVCMDID = 0x03;
const ESME_RINVBNDSTS = 0x04;
const ESME_RALYBND = 0x05;
const ESME_RINVDSTADR = 0x0b;
const ESME_RMSGQFUL = 0x14;
const ESME_RTHROTTLED = 0x58;
const MESSAGE_STATE = { DELIVRD: 2, UNDELIV: 5 };

// ---------------------------------------------------------------------------------------
// Knobs: `--name value`, `--name=value` (a bare `--name` is 1) or the env var SMSC_NAME.

const DEFAULTS = {
  port: 2775,
  'control-port': 2776,
  'id-format': 'hex',
  'resp-delay-ms': 0,
  'throttle-every': 0,
  'queue-full-every': 0,
  'fail-dest': '',
  'dlr-delay-ms': 50,
  'dlr-undeliv-dest': '',
  'dlr-duplicate': 0,
  record: 1,
  silent: 0,
};

function usage() {
  const lines = Object.entries(DEFAULTS).map(
    ([name, value]) => `  --${name} (SMSC_${envName(name)}, default ${JSON.stringify(value)})`,
  );
  return `usage: node smsc.js [--knob value]...\n${lines.join('\n')}\n`;
}

function envName(name) {
  return name.toUpperCase().replace(/-/g, '_');
}

function fail(message) {
  process.stderr.write(`smsc: ${message}\n${usage()}`);
  process.exit(2);
}

function parseOptions(argv, env) {
  const given = {};
  for (const name of Object.keys(DEFAULTS)) {
    if (env[`SMSC_${envName(name)}`] !== undefined) given[name] = env[`SMSC_${envName(name)}`];
  }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help') {
      process.stdout.write(usage());
      process.exit(0);
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !(m[1] in DEFAULTS)) fail(`unknown argument ${argv[i]}`);
    if (m[2] !== undefined) given[m[1]] = m[2];
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) given[m[1]] = argv[++i];
    else given[m[1]] = '1';
  }
  const opts = {};
  for (const [name, fallback] of Object.entries(DEFAULTS)) {
    const raw = given[name];
    if (raw === undefined) opts[name] = fallback;
    else if (typeof fallback === 'number') {
      if (!/^\d+$/.test(raw)) fail(`--${name} wants a whole number, not ${raw}`);
      opts[name] = Number(raw);
    } else opts[name] = raw;
  }
  if (!['hex', 'dec'].includes(opts['id-format'])) fail('--id-format is hex or dec');
  for (const name of ['fail-dest', 'dlr-undeliv-dest']) {
    try {
      opts[name] = opts[name] ? new RegExp(opts[name]) : null;
    } catch (e) {
      fail(`--${name}: ${e.message}`);
    }
  }
  return opts;
}

const opts = parseOptions(process.argv.slice(2), process.env);

// ---------------------------------------------------------------------------------------
// Text: GSM 03.38 (unpacked, one septet per octet), Latin-1, UCS-2 / UTF-16BE.

const GSM_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXTENSION = {
  0x0a: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2f: '\\',
  0x3c: '[', 0x3d: '~', 0x3e: ']', 0x40: '|', 0x65: '€',
};
const GSM_ENCODE = new Map();
[...GSM_BASIC].forEach((ch, i) => i !== 0x1b && GSM_ENCODE.set(ch, [i]));
for (const [code, ch] of Object.entries(GSM_EXTENSION)) GSM_ENCODE.set(ch, [0x1b, Number(code)]);

function gsmDecode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const septet = bytes[i] & 0x7f;
    if (septet !== 0x1b) out += GSM_BASIC[septet];
    else if (i + 1 < bytes.length) {
      // An escape with no extension character shows the basic one (03.38).
      const next = bytes[++i] & 0x7f;
      out += GSM_EXTENSION[next] ?? GSM_BASIC[next];
    }
  }
  return out;
}

function decodeText(bytes, dataCoding) {
  switch (dataCoding) {
    case 0:
      return gsmDecode(bytes);
    case 1: // IA5
    case 3:
      return bytes.toString('latin1');
    case 8:
      return Buffer.from(bytes.subarray(0, bytes.length & ~1)).swap16().toString('utf16le');
    default:
      return null;
  }
}

// The text as one Buffer per character (so cuts never split an escape or surrogate pair);
// what the coding cannot carry becomes '?'.
function encodeChars(text, dataCoding) {
  return [...text].map((ch) => {
    if (dataCoding === 8) return Buffer.from(ch, 'utf16le').swap16();
    if (dataCoding === 3) return Buffer.from([ch.codePointAt(0) <= 0xff ? ch.codePointAt(0) : 0x3f]);
    return Buffer.from(GSM_ENCODE.get(ch) || [0x3f]);
  });
}

// Cuts the characters into `parts` pieces of about equal length, or (no `parts`) into as
// many as needed: one SMS holds 140 octets, a part beside its UDH 134.
function cut(chars, parts) {
  if (parts > 1) {
    return Array.from({ length: parts }, (_, i) =>
      chars.slice(Math.floor((i * chars.length) / parts), Math.floor(((i + 1) * chars.length) / parts)),
    );
  }
  if (chars.reduce((n, c) => n + c.length, 0) <= 140) return [chars];
  const pieces = [[]];
  let size = 0;
  for (const c of chars) {
    if (size + c.length > 134) {
      pieces.push([]);
      size = 0;
    }
    pieces[pieces.length - 1].push(c);
    size += c.length;
  }
  return pieces;
}

// ---------------------------------------------------------------------------------------
// State.

const sessions = new Set(); // {id, session, remote, bind, system_id, bound_at}
let stats;
let records;
let partsByKey; // source|destination|via|ref -> Map(seq -> {rec, body})
let submitCount;
let held = null; // while paused: {enquireLink, queue: [{conn, pdu}]}
let pendingReceipts = []; // receipts waiting for a receiving session
let nextSessionId = 1;
let nextMessageId = Date.now() * 1000; // unique across restarts and /reset
let nextRef = 0;

function reset() {
  stats = {
    binds_total: 0,
    submit_sm: 0,
    data_sm: 0,
    accepted: 0,
    throttled: 0,
    queue_full: 0,
    failed: 0,
    invalid_bind_state: 0,
    withheld: 0,
    enquire_link: 0,
    unbind: 0,
    dlr_sent: 0,
    mo_sent: 0,
    deliver_sm_resp: 0,
    data_sm_resp: 0,
    generic_nack_received: 0,
    generic_nack_statuses: [],
  };
  records = [];
  partsByKey = new Map();
  submitCount = 0;
}
reset();

const receives = (conn) => conn.bind === 'receiver' || conn.bind === 'transceiver';
const transmits = (conn) => conn.bind === 'transmitter' || conn.bind === 'transceiver';
const bound = () => [...sessions].filter((c) => c.bind);

// The most recently bound receiving session, preferring `first`, then `systemId`.
function receiverFor(first, systemId) {
  if (first && sessions.has(first) && receives(first)) return first;
  const all = bound().filter(receives).reverse();
  return all.find((c) => systemId !== undefined && c.system_id === systemId) || all[0] || null;
}

function currentStats() {
  return {
    ...stats,
    binds_active: bound().length,
    paused: held !== null,
    dlr_pending: pendingReceipts.length,
    records: records.length,
  };
}

// ---------------------------------------------------------------------------------------
// SMPP side.

function send(conn, pdu, callback) {
  return conn.session.send(pdu, callback);
}

function onSession(session) {
  const socket = session.socket;
  const conn = {
    id: nextSessionId++,
    session,
    remote: `${socket.remoteAddress}:${socket.remotePort}`,
    bind: null,
    system_id: null,
    bound_at: null,
  };
  sessions.add(conn);
  // A PDU node-smpp cannot parse stops it reading that session for good: close it.
  session.on('error', () => session.destroy());
  session.on('close', () => {
    sessions.delete(conn);
    conn.bind = null;
  });
  if (!opts.silent) session.on('pdu', (pdu) => onPdu(conn, pdu));
}

function onPdu(conn, pdu) {
  switch (pdu.command) {
    case 'bind_transceiver':
    case 'bind_transmitter':
    case 'bind_receiver':
      return onBind(conn, pdu);
    case 'submit_sm':
    case 'data_sm':
      return onSubmit(conn, pdu);
    case 'enquire_link':
      stats.enquire_link++;
      if (held && held.enquireLink) return held.queue.push({ conn, pdu });
      return send(conn, pdu.response());
    case 'unbind':
      stats.unbind++;
      conn.bind = null;
      return send(conn, pdu.response(), () => conn.session.close());
    case 'deliver_sm_resp':
    case 'data_sm_resp':
      stats[pdu.command]++;
      return;
    case 'generic_nack':
      stats.generic_nack_received++;
      stats.generic_nack_statuses.push(pdu.command_status);
      return;
    case 'unknown': // node-smpp answers it with generic_nack ESME_RINVCMDID
      if (!pdu.isResponse()) send(conn, pdu.response());
      return;
    default:
      if (!pdu.isResponse()) send(conn, pdu.response({ command_status: ESME_RINVCMDID }));
  }
}

function onBind(conn, pdu) {
  if (conn.bind) return send(conn, pdu.response({ command_status: ESME_RALYBND }));
  conn.bind = pdu.command.slice('bind_'.length);
  conn.system_id = pdu.system_id;
  conn.bound_at = new Date().toISOString();
  stats.binds_total++;
  send(conn, pdu.response({ system_id: 'smsc-sim', sc_interface_version: 0x34 }));
  if (receives(conn) && pendingReceipts.length) {
    const waiting = pendingReceipts;
    pendingReceipts = [];
    waiting.forEach(sendReceipt);
  }
}

function onSubmit(conn, pdu) {
  stats[pdu.command]++;
  if (!transmits(conn)) {
    stats.invalid_bind_state++;
    return send(conn, pdu.response({ command_status: ESME_RINVBNDSTS }));
  }
  if (held) {
    stats.withheld++;
    return held.queue.push({ conn, pdu });
  }
  processSubmit(conn, pdu);
}

// The refusal this submit_sm gets, as [counter, command_status], or null to accept it.
function refusal(pdu) {
  submitCount++;
  const every = (n) => n > 0 && submitCount % n === 0;
  if (every(opts['throttle-every'])) return ['throttled', ESME_RTHROTTLED];
  if (every(opts['queue-full-every'])) return ['queue_full', ESME_RMSGQFUL];
  if (opts['fail-dest'] && opts['fail-dest'].test(pdu.destination_addr)) {
    return ['failed', ESME_RINVDSTADR];
  }
  return null;
}

function processSubmit(conn, pdu) {
  const submittedAt = new Date();
  const refused = refusal(pdu);
  let resp;
  if (refused) {
    stats[refused[0]]++;
    resp = pdu.response({ command_status: refused[1] });
  } else {
    const id = opts['id-format'] === 'hex' ? (nextMessageId++).toString(16) : String(nextMessageId++);
    stats.accepted++;
    resp = pdu.response({ message_id: id });
    const message = messageOf(pdu);
    if (opts.record) record(conn, pdu, id, message);
    scheduleReceipt(conn, pdu, id, message, submittedAt);
  }
  if (opts['resp-delay-ms']) setTimeout(() => send(conn, resp), opts['resp-delay-ms']);
  else send(conn, resp);
}

// ---------------------------------------------------------------------------------------
// What was submitted: the message bytes, their UDH and concatenation, and the records.

function messageOf(pdu) {
  const payload = pdu.short_message && pdu.short_message.length ? pdu.short_message : pdu.message_payload;
  const bytes = payload || Buffer.alloc(0);
  let body = bytes;
  let concat = null;
  if (pdu.esm_class & 0x40 && bytes.length) {
    body = bytes.subarray(1 + bytes[0]);
    concat = concatFromUdh(bytes.subarray(0, 1 + bytes[0]));
  }
  if (!concat && pdu.sar_msg_ref_num !== undefined) {
    concat = {
      ref: pdu.sar_msg_ref_num,
      total: pdu.sar_total_segments,
      seq: pdu.sar_segment_seqnum,
      via: 'sar',
    };
  }
  return { bytes, body, concat };
}

function concatFromUdh(udh) {
  for (let i = 1; i + 1 < udh.length; i += 2 + udh[i + 1]) {
    const data = udh.subarray(i + 2, i + 2 + udh[i + 1]);
    if (udh[i] === 0x00 && data.length === 3) {
      return { ref: data[0], total: data[1], seq: data[2], via: 'udh8' };
    }
    if (udh[i] === 0x08 && data.length === 4) {
      return { ref: data.readUInt16BE(0), total: data[2], seq: data[3], via: 'udh16' };
    }
  }
  return null;
}

function record(conn, pdu, messageId, message) {
  const info = pdu.its_session_info;
  const rec = {
    index: records.length,
    session: conn.id,
    kind: message.concat ? 'part' : 'single',
    command: pdu.command,
    message_id: messageId,
    sequence_number: pdu.sequence_number,
    system_id: conn.system_id,
    received_at: new Date().toISOString(),
    service_type: pdu.service_type,
    source_addr: pdu.source_addr,
    destination_addr: pdu.destination_addr,
    esm_class: pdu.esm_class,
    registered_delivery: pdu.registered_delivery,
    data_coding: pdu.data_coding,
    short_message_hex: message.bytes.toString('hex'),
    text: decodeText(message.body, pdu.data_coding),
    concat: message.concat,
    ussd_service_op: pdu.ussd_service_op ?? null,
    its_session_info: info ? (info.length === 2 ? info.readUInt16BE(0) : info.toString('hex')) : null,
  };
  records.push(rec);
  if (message.concat) collectPart(rec, message.body);
}

// Keeps a part; once all parts are in, adds the `reassembled` record.
function collectPart(rec, body) {
  const { ref, total, seq, via } = rec.concat;
  const key = [rec.source_addr, rec.destination_addr, via, ref].join('|');
  if (!partsByKey.has(key)) partsByKey.set(key, new Map());
  const parts = partsByKey.get(key);
  parts.set(seq, { rec, body });
  if (parts.size < total) return;
  partsByKey.delete(key);
  const ordered = [...parts.keys()].sort((a, b) => a - b).map((s) => parts.get(s));
  const joined = Buffer.concat(ordered.map((p) => p.body));
  records.push({
    index: records.length,
    kind: 'reassembled',
    system_id: rec.system_id,
    source_addr: rec.source_addr,
    destination_addr: rec.destination_addr,
    data_coding: rec.data_coding,
    ref,
    total,
    via,
    message_ids: ordered.map((p) => p.rec.message_id),
    part_indexes: ordered.map((p) => p.rec.index),
    body_hex: joined.toString('hex'),
    text: decodeText(joined, rec.data_coding),
  });
}

// ---------------------------------------------------------------------------------------
// Delivery receipts.

function scheduleReceipt(conn, pdu, id, message, submittedAt) {
  const undelivered = opts['dlr-undeliv-dest'] && opts['dlr-undeliv-dest'].test(pdu.destination_addr);
  const stat = undelivered ? 'UNDELIV' : 'DELIVRD';
  const asked = pdu.registered_delivery & 3;
  if (!(asked === 1 || (asked === 2 && stat !== 'DELIVRD'))) return;
  const receipt = {
    conn,
    system_id: conn.system_id,
    id,
    stat,
    from: pdu.source_addr,
    to: pdu.destination_addr,
    submittedAt,
    text: [...(decodeText(message.body, pdu.data_coding) || '')].slice(0, 20).join(''),
  };
  setTimeout(() => sendReceipt(receipt), opts['dlr-delay-ms']);
}

const smppDate = (d) => d.toISOString().replace(/\D/g, '').slice(2, 12); // YYMMDDhhmm, UTC

function sendReceipt(r) {
  const target = receiverFor(r.conn, r.system_id);
  if (!target) return pendingReceipts.push(r);
  const text =
    `id:${r.id} sub:001 dlvrd:${r.stat === 'DELIVRD' ? '001' : '000'} ` +
    `submit date:${smppDate(r.submittedAt)} done date:${smppDate(new Date())} ` +
    `stat:${r.stat} err:000 text:${r.text}`;
  for (let i = 0; i < (opts['dlr-duplicate'] ? 2 : 1); i++) {
    const pdu = new smpp.PDU('deliver_sm', {
      source_addr: r.to,
      destination_addr: r.from,
      esm_class: 0x04,
      data_coding: 0,
      short_message: Buffer.concat(encodeChars(text, 0)),
      receipted_message_id: r.id,
      message_state: MESSAGE_STATE[r.stat],
    });
    if (send(target, pdu)) stats.dlr_sent++;
  }
}

// ---------------------------------------------------------------------------------------
// Control API.

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function needReceiver() {
  const target = receiverFor(null);
  if (!target) throw new HttpError(409, 'no receiver or transceiver is bound');
  return target;
}

// Sends the PDUs to `conn`; with `waitMs`, waits that long for their answers.
async function sendAll(conn, pdus, waitMs) {
  const statuses = pdus.map(() => null);
  let answered = 0;
  let done;
  const allAnswered = new Promise((resolve) => (done = resolve));
  pdus.forEach((pdu, i) =>
    send(conn, pdu, (resp) => {
      statuses[i] = resp.command_status;
      if (++answered === pdus.length) done();
    }),
  );
  const result = { sent: pdus.length, sequence_numbers: pdus.map((p) => p.sequence_number) };
  if (!waitMs) return result;
  await Promise.race([allAnswered, new Promise((resolve) => setTimeout(resolve, waitMs))]);
  return { ...result, statuses };
}

function twoOctets(n) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

// POST /mo: an MO message as deliver_sm (in parts if asked or needed) or one data_sm.
async function postMo(body) {
  const { from, to, text = '', data_coding: dataCoding = 0, parts = 1 } = body;
  if (!from || !to) throw new HttpError(400, 'from and to are required');
  if (![0, 3, 8].includes(dataCoding)) throw new HttpError(400, 'data_coding is 0, 3 or 8');
  const target = needReceiver();
  const common = { source_addr: from, destination_addr: to, data_coding: dataCoding };
  if (body.service_type !== undefined) common.service_type = body.service_type;
  if (body.ussd_service_op !== undefined) common.ussd_service_op = body.ussd_service_op;
  if (body.its_session_info !== undefined) common.its_session_info = twoOctets(body.its_session_info);
  const chars = encodeChars(text, dataCoding);
  let pdus;
  if (body.data_sm) {
    pdus = [new smpp.PDU('data_sm', { ...common, message_payload: Buffer.concat(chars) })];
  } else {
    if (parts > chars.length) throw new HttpError(400, 'more parts than characters');
    const pieces = cut(chars, parts).map((piece) => Buffer.concat(piece));
    if (pieces.some((p) => p.length > 248)) throw new HttpError(400, 'a part is too long');
    const ref = nextRef++ & 0xff;
    const total = pieces.length;
    pdus = pieces.map((piece, i) => {
      const params = { ...common, esm_class: 0, short_message: piece };
      if (total > 1 && body.sar) {
        Object.assign(params, { sar_msg_ref_num: ref, sar_total_segments: total, sar_segment_seqnum: i + 1 });
      } else if (total > 1) {
        params.esm_class = 0x40;
        params.short_message = Buffer.concat([Buffer.from([5, 0x00, 3, ref, total, i + 1]), piece]);
      }
      return new smpp.PDU('deliver_sm', params);
    });
  }
  stats.mo_sent += pdus.length;
  return sendAll(target, pdus, body.wait_ms);
}

// POST /deliver: one deliver_sm exactly as given (bytes in hex, TLVs by node-smpp name;
// a TLV value is a number or, for an octet TLV, a hex string).
async function postDeliver(body) {
  const target = needReceiver();
  const params = {
    source_addr: body.from || '',
    destination_addr: body.to || '',
    esm_class: body.esm_class || 0,
    data_coding: body.data_coding || 0,
    short_message: Buffer.from(body.short_message_hex || '', 'hex'),
  };
  for (const [name, value] of Object.entries(body.tlvs || {})) {
    if (!(name in smpp.tlvs)) throw new HttpError(400, `unknown TLV ${name}`);
    params[name] = typeof value === 'string' ? Buffer.from(value, 'hex') : value;
  }
  stats.mo_sent++;
  return sendAll(target, [new smpp.PDU('deliver_sm', params)]);
}

// POST /raw: a PDU with any command_id, written to every bound session's socket (node-smpp
// builds PDUs only for the commands it knows).
function postRaw(body) {
  if (!Number.isInteger(body.command_id)) throw new HttpError(400, 'command_id is a number');
  const payload = Buffer.from(body.body_hex || '', 'hex');
  const targets = bound();
  for (const conn of targets) {
    const header = Buffer.alloc(16);
    header.writeUInt32BE(16 + payload.length, 0);
    header.writeUInt32BE(body.command_id >>> 0, 4);
    header.writeUInt32BE(0, 8);
    header.writeUInt32BE(++conn.session.sequence, 12);
    conn.session.socket.write(Buffer.concat([header, payload]));
  }
  return { sent: targets.length };
}

function postResume() {
  const queue = held ? held.queue : [];
  held = null;
  for (const { conn, pdu } of queue) {
    if (!sessions.has(conn)) continue;
    if (pdu.command === 'enquire_link') send(conn, pdu.response());
    else processSubmit(conn, pdu);
  }
  return { paused: false, released: queue.length };
}

function postUnbind() {
  const targets = bound();
  for (const conn of targets) {
    conn.bind = null;
    conn.session.unbind(() => conn.session.close());
  }
  return { unbound: targets.length };
}

function getMessages(query) {
  const since = Number(query.get('since') || 0);
  const kind = query.get('kind');
  return records.slice(since).filter((r) => !kind || r.kind === kind);
}

function getSessions() {
  return [...sessions].map(({ id, remote, bind, system_id, bound_at }) => ({
    id,
    remote,
    bound: bind !== null,
    bind,
    system_id,
    bound_at,
  }));
}

const ROUTES = {
  'GET /stats': () => currentStats(),
  'GET /messages': (_, query) => getMessages(query),
  'GET /sessions': () => getSessions(),
  'POST /reset': () => (reset(), { reset: true }),
  'POST /mo': postMo,
  'POST /deliver': postDeliver,
  'POST /raw': postRaw,
  'POST /drop': () => {
    const all = [...sessions];
    all.forEach((conn) => conn.session.destroy());
    return { dropped: all.length };
  },
  'POST /pause': (body) => {
    held = { enquireLink: !!body.enquire_link, queue: held ? held.queue : [] };
    return { paused: true, enquire_link: held.enquireLink };
  },
  'POST /resume': postResume,
  'POST /unbind': postUnbind,
};

function onControl(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const url = new URL(req.url, 'http://control');
    const answer = (status, value) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    const route = ROUTES[`${req.method} ${url.pathname}`];
    if (!route) return answer(404, { error: `no ${req.method} ${url.pathname}` });
    try {
      const text = Buffer.concat(chunks).toString();
      const body = text.trim() ? JSON.parse(text) : {};
      answer(200, await route(body, url.searchParams));
    } catch (e) {
      answer(e.status || 400, { error: e.message });
    }
  });
}

// ---------------------------------------------------------------------------------------
// Start: both listeners, then the one start line.

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
}

async function main() {
  process.stdout.on('error', () => {}); // the test may have closed its end of the pipe
  const smppServer = smpp.createServer(onSession);
  const control = http.createServer(onControl);
  const smppPort = await listen(smppServer, opts.port);
  const controlPort = await listen(control, opts['control-port']);
  process.stdout.write(`smsc listening smpp=127.0.0.1:${smppPort} control=127.0.0.1:${controlPort}\n`);
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      process.stdout.write(`smsc totals ${JSON.stringify(currentStats())}\n`);
      process.exit(0);
    });
  }
}

main().catch((e) => {
  process.stderr.write(`smsc: ${e.message}\n`);
  process.exit(1);
});
