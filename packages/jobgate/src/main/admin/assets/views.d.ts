// Types of views.js (plain JavaScript, because the browser loads it as it is).
export interface View {
  /** innerHTML by element id. */
  html: Record<string, string>;
  /** Attributes to set by element id. */
  attrs: Record<string, Record<string, string>>;
  /** Whether each element (by id) is hidden. */
  hidden: Record<string, boolean>;
}
export declare const RETRYABLE: string[];
export declare const CANCELLABLE: string[];
export declare function esc(value: unknown): string;
export declare function when(iso: string | null | undefined): string;
export declare function ago(iso: string | null | undefined, now?: number): string;
export declare function seconds(s: number): string;
export declare function nextPageHref(filter: Record<string, string>, cursor: string): string;
export declare function fetcherView(status: unknown, audit: unknown[]): View;
export declare function jobsView(page: { jobs: unknown[]; nextCursor: string | null }, filter: Record<string, string>): View;
export declare function catalogueOptions(jobs: Array<{ name: string; runsOnFetcher: boolean }>): string;
export declare function jobView(job: unknown): View;
export declare function cronView(schedules: unknown[]): View;
export declare function overviewView(overview: unknown): View;
export declare function batchView(batch: unknown): View;
