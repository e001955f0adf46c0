/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` / `npm run preview` serve the UI on their own port and forward the API to
// the gateway (which routes GET to query-api and the rest to command-api), so the browser
// still sees one origin. GATEWAY_URL overrides where that is.
const gateway = process.env.GATEWAY_URL ?? 'http://127.0.0.1:8080';
const proxy = {
  '/api': { target: gateway, changeOrigin: false },
  '/dev/token': { target: gateway, changeOrigin: false },
  '/openapi': { target: gateway, changeOrigin: false },
  // The runtime config the gateway renders (OpenID Connect settings).
  '/config.json': { target: gateway, changeOrigin: false },
};

export default defineConfig({
  plugins: [react()],
  server: { host: '127.0.0.1', port: 5173, strictPort: true, proxy },
  preview: { host: '127.0.0.1', port: 4173, strictPort: true, proxy },
  build: { outDir: 'dist', sourcemap: true, target: 'es2022' },
  test: {
    environment: 'node',
    include: ['src/**/*.test.{ts,tsx}'],
  },
});
