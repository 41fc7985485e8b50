/** Types of build.mjs, for the TypeScript tests and benchmarks that build the dashboard first. */
export declare const UI_DIST: string;
export interface BuiltFile {
  name: string;
  bytes: number;
  gzipBytes: number;
}
export declare function buildUi(options?: { outDir?: string; quiet?: boolean }): Promise<{ outDir: string; files: BuiltFile[]; bytes: number; gzipBytes: number }>;
