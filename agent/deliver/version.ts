// Sent in hello so the server can tell agent versions apart; bump with package.json.
export const AGENT_VERSION = '0.1.0';
