import { z } from 'zod';
import { PermanentJobError } from '../support/index.ts';
import { defineJob } from '../define/define-job.ts';
import { publicFetch, type PublicFetchOptions } from './public-fetch.ts';

export const NotificationPayload = z.strictObject({
  to: z.string().min(1).max(320),
  subject: z.string().min(1).max(200),
  body: z.string().max(10_000).default(''),
  webhookUrl: z.url({ protocol: /^https?$/ }).optional(),
});

/**
 * Sends a notification: to a webhook when `webhookUrl` is given, otherwise into the log (the
 * channel a fresh install has). The webhook URL comes from whoever enqueued the job, so it may only
 * reach public addresses unless its host is in `allowedHosts` (see publicFetch).
 */
export function notificationJob(options: Pick<PublicFetchOptions, 'allowedHosts' | 'lookup'>) {
  return defineJob({
    name: 'notifications.send',
    payload: NotificationPayload,
    retry: { limit: 5, delaySeconds: 30, backoff: true, maxDelaySeconds: 3_600 },
    timeoutSeconds: 60,
    async run(payload, ctx) {
      if (!payload.webhookUrl) {
        ctx.logger.info({ to: payload.to, subject: payload.subject }, 'notification sent to the log');
        return;
      }
      const response = await publicFetch(new URL(payload.webhookUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ to: payload.to, subject: payload.subject, body: payload.body, jobId: ctx.job.id }),
        signal: ctx.signal,
      }, options);
      await response.body?.cancel();
      if (response.status >= 300 && response.status < 400) throw new PermanentJobError(`webhook answered ${response.status} (redirects are not followed)`);
      // A 4xx other than 408/429 will not get better by retrying.
      if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
        throw new PermanentJobError(`webhook answered ${response.status}`);
      }
      if (!response.ok) throw new Error(`webhook answered ${response.status}`);
      ctx.logger.info({ to: payload.to, status: response.status }, 'notification delivered');
    },
  });
}
