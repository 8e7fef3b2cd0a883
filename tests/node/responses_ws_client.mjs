// The official openai Node SDK (`ResponsesWS`) against tether, driven by tests/test_node_sdk.py.
//
// One socket: a store:false chain on the default lane (a tool call, its output, a follow-up), then two
// named lanes forked from that chain's last response, running at the same time. Responses are read
// with the SDK's lane helper, whose `finalResponse()` validates every completed output item and the
// terminal response. Prints one JSON object: what each turn returned, and every event seen on the
// socket (for the Python side to validate against the SDK's Python types too).
//
// usage: node responses_ws_client.mjs <base_url> <api_key>

import OpenAI from 'openai';
import { ResponsesWebSocketSession } from 'openai/lib/responses/responses-websocket-session';
import { ResponsesWS } from 'openai/resources/responses/ws';

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey });
const tools = [
  {
    type: 'function',
    name: 'get_weather',
    description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    strict: true,
  },
];

const socket = new ResponsesWS(client);
const events = [];
const errors = [];
socket.on('event', (event) => events.push(event));
socket.on('error', (error) => errors.push(String(error?.message ?? error)));
// The lane helper sends only on an open socket.
await new Promise((resolve, reject) => {
  socket.socket.once('open', resolve);
  socket.socket.once('error', reject);
});

const session = new ResponsesWebSocketSession(socket, {
  maxLanes: 8,
  maxBufferedEvents: 10_000,
  maxBufferedBytes: 16 * 1024 * 1024,
});

function summary(response) {
  return {
    id: response.id,
    status: response.status,
    previous_response_id: response.previous_response_id ?? null,
    output_types: response.output.map((item) => item.type),
    output_text: response.output_text,
    calls: response.output.filter((item) => item.type === 'function_call').map((item) => ({
      call_id: item.call_id,
      name: item.name,
      arguments: item.arguments,
    })),
  };
}

async function turn(lane, request) {
  lane.create({ model: 'tether-scripted', store: false, tools, ...request });
  return summary(await lane.finalResponse());
}

const main = session.lane();
const chain = [];
chain.push(await turn(main, { input: 'What is the weather in Paris?' }));
const [call] = chain[0].calls;
chain.push(await turn(main, {
  previous_response_id: chain[0].id,
  input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"sky": "sunny"}' }],
}));
chain.push(await turn(main, { previous_response_id: chain[1].id, input: 'Thanks!' }));

// Two lanes fork from the chain's last response and go on, concurrently.
async function laneChain(name) {
  const lane = session.lane(name);
  const first = await turn(lane, { previous_response_id: chain[2].id, input: `${name}: first` });
  const second = await turn(lane, { previous_response_id: first.id, input: `${name}: second` });
  return [first, second];
}
const [alpha, beta] = await Promise.all([laneChain('alpha'), laneChain('beta')]);

session.close();
socket.close({ code: 1000, reason: 'done' });
process.stdout.write(JSON.stringify({ chain, lanes: { alpha, beta }, events, errors }));
