import tailwindcss from '@tailwindcss/vite'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'

// `npm run dev` serves the client on :5173 (an origin the local cell accepts) and passes the
// API and the socket through to the local cell (`scripts/cell.sh`, :8080).
const cell = process.env.CHAT_CELL_URL ?? 'http://127.0.0.1:8080'

export default defineConfig({
  plugins: [vue(), tailwindcss()],
  server: {
    port: 5173,
    proxy: {
      '/api': cell,
      '/ws': { target: cell.replace(/^http/, 'ws'), ws: true },
    },
  },
  test: { environment: 'node', include: ['tests/**/*.test.ts'] },
})
