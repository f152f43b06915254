// Every page of the admin, in menu order: the router mounts these and nothing else. A new page is
// one module in this folder (see ../page.ts) and one line here.
import type { PageUnit } from '../page.ts';
import { batchPage } from './batch.ts';
import { fetcherPage } from './fetcher.ts';
import { jobPage } from './job.ts';
import { jobsPage } from './jobs.ts';
import { overviewPage } from './overview.ts';
import { schedulesPage } from './schedules.ts';

export const ADMIN_PAGES: readonly PageUnit[] = [
  overviewPage,
  fetcherPage,
  jobsPage,
  jobPage,
  batchPage,
  schedulesPage,
];
