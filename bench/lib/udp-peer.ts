// The host end of the virtio-net benchmark: a UDP sink that counts what arrives and a UDP echo
// server, on one address. Runs as its own process (inside a network namespace for the tap runs):
// prints "ready SINK_PORT ECHO_PORT" once bound, and the counts as JSON when its stdin ends.
//   node dist/bench/lib/udp-peer.js ADDRESS SINK_PORT ECHO_PORT (0: any free port)
import { createSocket } from 'node:dgram';

const [address = '127.0.0.1', sinkPort = '0', echoPort = '0'] = process.argv.slice(2);
// Datagrams counted by size: each benchmark phase sends its own.
const counts = { sinkFrames: 0, sinkBytes: 0, bySize: {} as Record<number, number>, echoed: 0 };
const sink = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
const echo = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
sink.on('message', (message) => {
  counts.sinkFrames++;
  counts.sinkBytes += message.length;
  counts.bySize[message.length] = (counts.bySize[message.length] ?? 0) + 1;
});
echo.on('message', (message, from) => {
  counts.echoed++;
  echo.send(message, from.port, from.address);
});
let bound = 0;
const ready = () => {
  if (++bound === 2) process.stdout.write(`ready ${sink.address().port} ${echo.address().port}\n`);
};
sink.bind(Number(sinkPort), address, ready);
echo.bind(Number(echoPort), address, ready);
process.stdin.resume();
process.stdin.on('end', () => {
  process.stdout.write(`${JSON.stringify(counts)}\n`);
  process.exit(0);
});
