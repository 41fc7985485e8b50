/** The Strongbox version, reported by /health, the CLI and every manifest. */
export const VERSION = '0.1.0';
