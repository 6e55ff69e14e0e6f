#!/usr/bin/env node
// Load client for the SMSC simulator: `node load.js PORT N WINDOW` binds one transceiver on
// 127.0.0.1:PORT, sends N submit_sm keeping WINDOW of them unanswered, and prints one JSON
// line {"sent","seconds","rate","window","failed"} (failed: answers with a non-zero
// command_status). It gives up after 120 s (exit 1).
'use strict';

const smpp = require('smpp');

const [port, total, window] = process.argv.slice(2, 5).map(Number);
if (!(port > 0 && total > 0 && window > 0)) {
  process.stderr.write('usage: node load.js PORT N WINDOW\n');
  process.exit(2);
}

// The bytes are built here, with data_coding set, so node-smpp does not encode text itself.
const message = {
  source_addr: '12345',
  destination_addr: '27820000001',
  data_coding: 0,
  short_message: Buffer.from('load test message, about the size of an SMS'),
};

const session = smpp.connect({ host: '127.0.0.1', port });
let sent = 0;
let answered = 0;
let failed = 0;
let started;

function finish() {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const rate = Math.round(answered / seconds);
  process.stdout.write(`${JSON.stringify({ sent: answered, seconds, rate, window, failed })}\n`);
  session.unbind(() => session.close());
  setTimeout(() => process.exit(0), 200).unref();
}

function submit() {
  sent++;
  session.submit_sm(message, (resp) => {
    answered++;
    if (resp.command_status !== 0) failed++;
    if (answered === total) finish();
    else if (sent < total) submit();
  });
}

session.on('error', (e) => {
  process.stderr.write(`load.js: ${e.message}\n`);
  process.exit(1);
});
session.on('deliver_sm', (pdu) => session.send(pdu.response()));
session.on('connect', () => {
  session.bind_transceiver(
    { system_id: 'load', password: 'load', interface_version: 0x34 },
    (resp) => {
      if (resp.command_status !== 0) {
        process.stderr.write(`load.js: bind refused, status ${resp.command_status}\n`);
        process.exit(1);
      }
      started = process.hrtime.bigint();
      for (let i = 0; i < Math.min(window, total); i++) submit();
    },
  );
});
setTimeout(() => {
  process.stderr.write(`load.js: gave up after 120 s, ${answered} of ${total} answered\n`);
  process.exit(1);
}, 120_000).unref();
