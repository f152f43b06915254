-- Room on each page of the ledger for the updates that change no indexed column (heap-only
-- tuples: no index entry, the old version pruned in place). The forwarder's take of a routed job
-- writes only its delivery lease (store/main-ledger.ts takeToForward), as a lease renewal and a
-- progress step do; without free room on the job's page such an update goes to another page and
-- writes an entry into every index. Applies to the pages written from now on.
ALTER TABLE jobs SET (fillfactor = 85);
