/** What `npm start` prints in dev mode: the three steps from a running relay to a streamed chat. */
export function banner(url: string): string {
  return `
  CloudToLocalLLM relay is running at ${url} (dev auth; do not expose it as is)

  1. Get a token for a user:      TOKEN=$(npm run --silent token -- alice)
  2. Start the bridge on the PC:  npm run bridge -- --server ${url} --token "$TOKEN" --target http://127.0.0.1:11434
  3. Call your model:             curl -N -H "Authorization: Bearer $TOKEN" ${url}/api/tunnel/alice/api/chat \\
                                    -d '{"model":"llama3.2","messages":[{"role":"user","content":"Hello"}]}'
  Or open ${url}/ in a browser on this machine: sign in as alice, see your PC and chat.

`;
}
