/* hubctl_audit — `hubctl audit verify|show`: offline checks of the audit
 * log (no running hub needed). Returns the process exit status. */
#ifndef HUBCTL_AUDIT_H
#define HUBCTL_AUDIT_H

int hubctl_audit(int argc, char **argv);

#endif
