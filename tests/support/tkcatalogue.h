/* tkcatalogue — the procedure catalogue the repository ships
 * (deploy/catalogue-hn.tsv), for the tests of the dossier plugins: there is
 * no built-in list, so the procedure system is told to read it, and a test
 * that computes its own expectations (fees, limits) installs it too.
 *
 * Built with the tests that link lth_domain (tests/e2e/CMakeLists.txt).
 * Failures fail the calling Check test.
 */
#ifndef TKCATALOGUE_H
#define TKCATALOGUE_H

#include <stddef.h>

/* The members of the dossier stack, as deploy/policy-demo.conf names them:
 * the population database, the one-stop shop's procedure system, the
 * national portal, reporting, two sector authorities (enterprise
 * registration, civil status) and the reform office, which asks for the
 * report. */
#define POP "VN/GOV/BCA/CSDLQGDC"
#define TTHC "VN/GOV/HN-VP/TTHC"
#define PORTAL "VN/GOV/VPCP/DVCQG"
#define REPORT "VN/GOV/HN-VP/BAOCAO"
#define DKKD "VN/GOV/HN-SKHDT/DKKD"
#define HOTICH "VN/GOV/HN-STP/HOTICH"
#define CCHC "VN/GOV/HN-SNV/CCHC"

/* Writes into conf the procedure plugin's settings for the shipped file
 * (plugin.catalogue_file, and plugin.catalogue_status under dir, so that
 * nothing is written beside the source tree's file), and installs the same
 * catalogue in this process (lth_procedure_install; lth_procedure_release_all
 * in the teardown frees it). */
void tk_catalogue_use_shipped(const char *dir, char *conf, size_t size);

/* The demo's agreements (deploy/policy-demo.conf in the source tree), read
 * into a string (free it). */
char *tk_demo_policy(void);
/* Writes the demo's agreements unchanged to dir/policy.conf. */
void tk_demo_policy_write(const char *dir);
/* Writes into proc, portal and report (PATH_MAX each) the databases of the
 * procedure, portal and report adapters under dir. */
void tk_dossier_db_paths(const char *dir, char *proc, char *portal, char *report);

#endif
