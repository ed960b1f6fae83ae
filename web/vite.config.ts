import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// the page of `lmf webui`, built into web/dist and served by the same process as its API
export default defineConfig({ root: import.meta.dirname, plugins: [react()], build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1000 } });
