/* hubctl_backup — `hubctl backup DEST` and `hubctl restore BACKUP`.
 *
 * backup takes a consistent copy of a hub while it runs: the store as one
 * LMDB snapshot (hub_store_backup), the subscriptions file, the audit log
 * (closed files whole, the current one up to its last complete record,
 * copied after the store so that every message in the store copy has its
 * ACCEPTED record), the configuration with the public files it names
 * (members' keys or certificates, CA certificate, CRL, agreements,
 * delegations), and the hub's secret key only with --with-keys. DEST/MANIFEST
 * names the store (id, format, next seq) and every file with its SHA-256.
 *
 * restore (hub stopped) checks the backup against its manifest, puts the
 * store, subscriptions and audit log where the hub's configuration says,
 * owned by the owner of data_dir, and checks the result: the store opens
 * as the store the manifest names, the audit log verifies with the hub's
 * key. Returns the process exit status (0, 1 failure, 2 usage).
 */
#ifndef HUBCTL_BACKUP_H
#define HUBCTL_BACKUP_H

int hubctl_backup_main(int argc, char **argv);
int hubctl_restore_main(int argc, char **argv);
/* hubctl store init|info: creates or migrates a PostgreSQL store's schema;
 * shows a store's identity and counts. */
int hubctl_store_main(int argc, char **argv);

#endif
