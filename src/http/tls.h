/* tls: the certificate and key goosed serves HTTPS with (GnuTLS). Either the PEM files of
 * tls_cert and tls_key, or, with tls_self_signed, a self-signed pair made at the first start in
 * the data directory (tls-cert.pem, and tls-key.pem with mode 0600) and reused afterwards.
 * Whichever way it came, the certificate's SHA-256 fingerprint is what a client can pin. */
#ifndef GD_TLS_H
#define GD_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/err.h"

#define TLS_CERT_FILE "tls-cert.pem" /* the self-signed pair, in cfg->data_dir */
#define TLS_KEY_FILE  "tls-key.pem"
#define TLS_FILE_MAX  (1u << 20) /* bytes: a larger file is not a certificate or a key */
/* SHA-256 as 32 upper-case hex pairs joined with ':' (as openssl x509 -fingerprint -sha256) */
#define TLS_FINGERPRINT_LEN (32 * 3)

typedef struct {
    char *cert_pem; /* the certificate (chain), PEM, NUL-terminated */
    char *key_pem;  /* the private key, PEM, NUL-terminated; wiped when freed */
    char fingerprint[TLS_FINGERPRINT_LEN]; /* of the first (the server's) certificate */
    char cert_path[PATH_MAX];              /* where the certificate came from */
    char *client_ca_pem; /* tls_client_ca's certificates, PEM, or NULL: no client certificate
                          * is asked for */
    unsigned client_cas; /* how many */
    bool generated;      /* made by this start (tls_self_signed) */
} tls_creds;

/* Whether cfg asks for TLS (tls_cert, tls_key, tls_self_signed or tls_client_ca set). */
bool tls_wanted(const config *cfg);

/* Reads (or, with tls_self_signed and no pair in cfg->data_dir yet, makes and stores) the
 * certificate and key, and checks them as the TLS library will use them: both PEM, the key
 * unencrypted and matching the certificate; and tls_client_ca's certificates, when it is set
 * (PEM certificates, at least one; a CA file without a certificate to serve is refused). On failure
 * returns GD_EINVAL (GD_EIO for a file that cannot be read or written) with a message naming the
 * file and the problem in err, and *out holds nothing. On success the caller frees *out with
 * tls_creds_free. Logs warnings (a key file others can read, a certificate out of its validity, a
 * self-signed one that does not name the configured host). */
gd_err tls_load(const config *cfg, tls_creds *out, char *err, size_t errlen);

/* Frees what tls_load filled (the key wiped first); *c is left empty. NULL-safe. */
void tls_creds_free(tls_creds *c);

#endif
