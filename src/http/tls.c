/* The certificate and key goosed serves HTTPS with: read and checked here (so that a bad file
 * stops goosed with a message naming it, not a bare "cannot start" from the server), or made
 * once and stored when tls_self_signed asks for it. See tls.h. */
#include "http/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/log.h"

#define SELF_SIGNED_DAYS 825 /* the longest validity some clients accept for a server cert */
#define SELF_SIGNED_CN   "goosed"

/* What check_pair learns about a certificate besides its being usable. */
struct cert_info {
    char fingerprint[TLS_FINGERPRINT_LEN];
    time_t not_before, not_after;
    bool names_host; /* its names cover cfg->host (or the host is a wildcard address) */
};

/* One file of the pair, for messages: "tls_cert /etc/goosed/cert.pem". */
struct file_ref {
    const char *label;
    const char *path;
};

bool tls_wanted(const config *cfg)
{
    return cfg->tls_cert[0] || cfg->tls_key[0] || cfg->tls_self_signed || cfg->tls_client_ca[0];
}

void tls_creds_free(tls_creds *c)
{
    if (!c) return;
    if (c->key_pem) {
        explicit_bzero(c->key_pem, strlen(c->key_pem));
        free(c->key_pem);
    }
    free(c->cert_pem);
    free(c->client_ca_pem);
    memset(c, 0, sizeof *c);
}

/* Reads a whole (small, regular) file into a NUL-terminated string the caller frees. */
static gd_err read_small(struct file_ref f, char **out, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(f.path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s %s: cannot open: %s", f.label, f.path, strerror(errno));
        return GD_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s %s: cannot read: %s", f.label, f.path, strerror(errno));
        close(fd);
        return GD_EIO;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)TLS_FILE_MAX) {
        snprintf(err, errlen, "%s %s: %s", f.label, f.path,
                 !S_ISREG(st.st_mode) ? "not a regular file"
                                      : "larger than 1 MB: not a certificate or a key");
        close(fd);
        return GD_EINVAL;
    }
    char *data = malloc((size_t)st.st_size + 1);
    size_t n = 0;
    while (data && n < (size_t)st.st_size) {
        ssize_t r = read(fd, data + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            snprintf(err, errlen, "%s %s: cannot read: %s", f.label, f.path,
                     r < 0 ? strerror(errno) : "the file shrank while being read");
            explicit_bzero(data, n);
            free(data);
            close(fd);
            return GD_EIO;
        }
        n += (size_t)r;
    }
    close(fd);
    if (!data) {
        snprintf(err, errlen, "%s %s: out of memory", f.label, f.path);
        return GD_ENOMEM;
    }
    data[n] = '\0';
    if (strlen(data) != n) {
        explicit_bzero(data, n);
        free(data);
        snprintf(err, errlen,
                 "%s %s: holds NUL bytes: not a PEM file (a DER file converts with "
                 "openssl x509 -inform der, or openssl pkey -inform der)",
                 f.label, f.path);
        return GD_EINVAL;
    }
    *out = data;
    return GD_OK;
}

static void hex_fingerprint(const unsigned char *raw, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 <= TLS_FINGERPRINT_LEN; i++) {
        out[o++] = hex[raw[i] >> 4];
        out[o++] = hex[raw[i] & 15];
        out[o++] = i + 1 < n ? ':' : '\0';
    }
}

/* A host goosed binds that names no one machine (every address). */
static bool wildcard_host(const char *host)
{
    return !*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !strcmp(host, "[::]");
}

/* Checks a certificate (chain) and key as the TLS library will take them, and tells what the
 * caller may want to warn about. GD_OK, or GD_EINVAL with a message naming the file. */
static gd_err check_pair(const char *cert_pem, const char *key_pem, struct file_ref cf,
                         struct file_ref kf, const char *host, struct cert_info *info, char *err,
                         size_t errlen)
{
    if (!strstr(cert_pem, "-----BEGIN CERTIFICATE-----")) {
        snprintf(err, errlen,
                 "%s %s: not a PEM certificate (no \"-----BEGIN CERTIFICATE-----\" "
                 "line)%s",
                 cf.label, cf.path,
                 strstr(cert_pem, "PRIVATE KEY-----")
                     ? "; it holds a private key: are tls_cert and "
                       "tls_key swapped?"
                     : "");
        return GD_EINVAL;
    }
    if (!strstr(key_pem, "PRIVATE KEY-----")) {
        snprintf(err, errlen,
                 "%s %s: not a PEM private key (no \"-----BEGIN ... PRIVATE KEY-----\" "
                 "line)%s",
                 kf.label, kf.path,
                 strstr(key_pem, "-----BEGIN CERTIFICATE-----")
                     ? "; it holds a certificate: are tls_cert and tls_key swapped?"
                     : "");
        return GD_EINVAL;
    }
    if (strstr(key_pem, "ENCRYPTED")) {
        snprintf(err, errlen,
                 "%s %s: the private key is encrypted with a passphrase; goosed "
                 "needs it unencrypted (openssl pkey -in KEY -out KEY.plain), in a file only "
                 "goosed's user can read",
                 kf.label, kf.path);
        return GD_EINVAL;
    }

    gd_err rc = GD_EINVAL;
    gnutls_x509_crt_t *crts = NULL;
    unsigned ncrts = 0;
    gnutls_x509_privkey_t key = NULL;
    gnutls_certificate_credentials_t creds = NULL;
    gnutls_datum_t cd = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
    gnutls_datum_t kd = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
    int e = gnutls_x509_crt_list_import2(&crts, &ncrts, &cd, GNUTLS_X509_FMT_PEM, 0);
    if (e < 0 || ncrts == 0) {
        snprintf(err, errlen, "%s %s: cannot read the certificate: %s", cf.label, cf.path,
                 e < 0 ? gnutls_strerror(e) : "none found");
        goto out;
    }
    if ((e = gnutls_x509_privkey_init(&key)) < 0 ||
        (e = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(err, errlen, "%s %s: cannot read the private key: %s", kf.label, kf.path,
                 gnutls_strerror(e));
        goto out;
    }
    unsigned char kid[64], cid[64];
    size_t kn = sizeof kid, cn = sizeof cid;
    if ((e = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, kid, &kn)) < 0 ||
        (e = gnutls_x509_crt_get_key_id(crts[0], GNUTLS_KEYID_USE_SHA256, cid, &cn)) < 0) {
        snprintf(err, errlen, "%s %s and %s %s: cannot compare their public keys: %s", cf.label,
                 cf.path, kf.label, kf.path, gnutls_strerror(e));
        goto out;
    }
    if (kn != cn || memcmp(kid, cid, kn) != 0) {
        snprintf(err, errlen,
                 "%s %s does not match the certificate in %s %s (their public keys "
                 "differ; the first certificate of the file must be the server's own)",
                 kf.label, kf.path, cf.label, cf.path);
        goto out;
    }
    /* what the server will do with them, so that it cannot fail for a reason not named here */
    if ((e = gnutls_certificate_allocate_credentials(&creds)) < 0 ||
        (e = gnutls_certificate_set_x509_key_mem2(creds, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) <
            0) {
        snprintf(err, errlen, "%s %s with %s %s: the TLS library refuses them: %s", cf.label,
                 cf.path, kf.label, kf.path, gnutls_strerror(e));
        goto out;
    }
    unsigned char raw[32];
    size_t rn = sizeof raw;
    if ((e = gnutls_x509_crt_get_fingerprint(crts[0], GNUTLS_DIG_SHA256, raw, &rn)) < 0) {
        snprintf(err, errlen, "%s %s: cannot compute the certificate's fingerprint: %s", cf.label,
                 cf.path, gnutls_strerror(e));
        goto out;
    }
    hex_fingerprint(raw, rn, info->fingerprint);
    info->not_before = gnutls_x509_crt_get_activation_time(crts[0]);
    info->not_after = gnutls_x509_crt_get_expiration_time(crts[0]);
    info->names_host =
        wildcard_host(host) || gnutls_x509_crt_check_hostname2(crts[0], host, 0) != 0;
    rc = GD_OK;
out:
    if (creds) gnutls_certificate_free_credentials(creds);
    if (key) gnutls_x509_privkey_deinit(key);
    for (unsigned i = 0; i < ncrts; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    return rc;
}

static void utc_date(time_t t, char *out, size_t n)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M UTC", &tm))
        snprintf(out, n, "(unknown)");
}

/* Warns about a certificate out of its validity period. */
static void warn_validity(struct file_ref cf, const struct cert_info *info)
{
    time_t now = time(NULL);
    char when[64];
    if (info->not_after != (time_t)-1 && now > info->not_after) {
        utc_date(info->not_after, when, sizeof when);
        log_warn("tls", "%s %s expired on %s: clients that check it will refuse it", cf.label,
                 cf.path, when);
    } else if (info->not_before != (time_t)-1 && now < info->not_before) {
        utc_date(info->not_before, when, sizeof when);
        log_warn("tls", "%s %s is not valid before %s: clients that check it will refuse it",
                 cf.label, cf.path, when);
    }
}

/* Warns when a key file can be read by other users than goosed's. */
static void warn_key_mode(struct file_ref kf)
{
    struct stat st;
    if (stat(kf.path, &st) == 0 && (st.st_mode & 077))
        log_warn("tls", "%s %s can be read by other users (mode %03o): chmod 600 it", kf.label,
                 kf.path, (unsigned)(st.st_mode & 0777));
}

/* ---- the self-signed pair ---- */

/* mkdir -p, each new directory 0700. */
static gd_err make_dirs(const char *dir, char *err, size_t errlen)
{
    char failed[PATH_MAX];
    if (fs_mkdirs(dir, 0700, failed, sizeof failed) == 0) return GD_OK;
    snprintf(err, errlen, "cannot create the data directory %s: %s", failed, strerror(errno));
    return GD_EIO;
}

/* Writes data to path through a temporary file renamed over it, with the given mode. */
static gd_err write_file(const char *path, const char *data, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return GD_EIO;
    }
    size_t len = strlen(data), n = 0;
    int saved = 0;
    if (fchmod(fd, mode) != 0) saved = errno; /* the umask may have taken bits away */
    while (!saved && n < len) {
        ssize_t w = write(fd, data + n, len - n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) saved = errno;
        n += w > 0 ? (size_t)w : 0;
    }
    if (!saved && fsync(fd) != 0) saved = errno;
    if (close(fd) != 0 && !saved) saved = errno;
    if (!saved && rename(tmp, path) != 0) saved = errno;
    if (saved) {
        unlink(tmp);
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
        return GD_EIO;
    }
    return GD_OK;
}

/* Adds host to the certificate's subjectAltName: an IP address as one, else a DNS name. */
static int add_san(gnutls_x509_crt_t crt, const char *host)
{
    unsigned char a[16];
    char name[256];
    size_t n = strlen(host);
    if (n >= sizeof name) return 0;
    if (host[0] == '[' && n > 2 && host[n - 1] == ']') { /* [v6] */
        memcpy(name, host + 1, n - 2);
        name[n - 2] = '\0';
    } else {
        memcpy(name, host, n + 1);
    }
    if (inet_pton(AF_INET, name, a) == 1)
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, a, 4,
                                                    GNUTLS_FSAN_APPEND);
    if (inet_pton(AF_INET6, name, a) == 1)
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, a, 16,
                                                    GNUTLS_FSAN_APPEND);
    for (const char *p = name; *p; p++) /* only what a DNS name holds */
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return 0;
    return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                                (unsigned)strlen(name), GNUTLS_FSAN_APPEND);
}

/* Makes an ECDSA P-256 key and a certificate for it, signed by itself, naming localhost,
 * 127.0.0.1, ::1 and host (for a wildcard host: this machine's name). Both PEM strings are the
 * caller's to free (the key wiped first). */
static gd_err make_pair(const char *host, char **cert_pem, char **key_pem, char *err, size_t errlen)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t c = {0}, k = {0};
    unsigned char serial[16], kid[64];
    size_t kn = sizeof kid;
    time_t now = time(NULL);
    const char *where = "";
    int e;
#define TRY(what, call)                                                                            \
    if ((e = (call)) < 0) {                                                                        \
        where = what;                                                                              \
        goto out;                                                                                  \
    }
    TRY("the key", gnutls_x509_privkey_init(&key));
    TRY("the key", gnutls_x509_privkey_generate(
                       key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
    TRY("the certificate", gnutls_x509_crt_init(&crt));
    TRY("the certificate", gnutls_x509_crt_set_version(crt, 3));
    TRY("a serial number", gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial));
    serial[0] &= 0x7F; /* a positive number */
    serial[0] |= 0x40; /* of full length */
    TRY("the certificate", gnutls_x509_crt_set_serial(crt, serial, sizeof serial));
    TRY("the certificate", gnutls_x509_crt_set_activation_time(crt, now - 3600));
    TRY("the certificate",
        gnutls_x509_crt_set_expiration_time(crt, now + (time_t)SELF_SIGNED_DAYS * 86400));
    TRY("the certificate", gnutls_x509_crt_set_dn(crt, "CN=" SELF_SIGNED_CN, NULL));
    TRY("the certificate", gnutls_x509_crt_set_key(crt, key));
    TRY("the certificate's names",
        gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                             GNUTLS_FSAN_APPEND));
    TRY("the certificate's names", add_san(crt, "127.0.0.1"));
    TRY("the certificate's names", add_san(crt, "::1"));
    if (wildcard_host(host)) {
        char me[256] = "";
        if (gethostname(me, sizeof me - 1) == 0 && me[0] && strcmp(me, "localhost") != 0)
            TRY("the certificate's names", add_san(crt, me));
    } else if (strcasecmp(host, "localhost") && strcmp(host, "127.0.0.1") && strcmp(host, "::1") &&
               strcmp(host, "[::1]")) {
        TRY("the certificate's names", add_san(crt, host));
    }
    TRY("the certificate", gnutls_x509_crt_set_basic_constraints(crt, 0, -1));
    TRY("the certificate", gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
    TRY("the certificate", gnutls_x509_crt_get_key_id(crt, 0, kid, &kn));
    TRY("the certificate", gnutls_x509_crt_set_subject_key_id(crt, kid, kn));
    TRY("the signature", gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0));
    TRY("the certificate", gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &c));
    TRY("the key",
        gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &k));
#undef TRY
    *cert_pem = strndup((const char *)c.data, c.size);
    *key_pem = strndup((const char *)k.data, k.size);
    if (!*cert_pem || !*key_pem) {
        free(*cert_pem);
        free(*key_pem);
        *cert_pem = *key_pem = NULL;
        where = "the files";
        e = GNUTLS_E_MEMORY_ERROR;
    }
out:
    if (k.data) {
        explicit_bzero(k.data, k.size);
        gnutls_free(k.data);
    }
    gnutls_free(c.data);
    if (crt) gnutls_x509_crt_deinit(crt);
    if (key) gnutls_x509_privkey_deinit(key);
    if (e < 0) {
        snprintf(err, errlen, "cannot make a self-signed certificate (%s): %s", where,
                 gnutls_strerror(e));
        return GD_EINVAL;
    }
    return GD_OK;
}

/* tls_self_signed: the stored pair, or a new one (at the first start, or when the stored
 * certificate has expired). */
static gd_err self_signed(const config *cfg, tls_creds *out, struct cert_info *info, char *err,
                          size_t errlen)
{
    char cpath[PATH_MAX + 32], kpath[PATH_MAX + 32];
    snprintf(cpath, sizeof cpath, "%s/%s", cfg->data_dir, TLS_CERT_FILE);
    snprintf(kpath, sizeof kpath, "%s/%s", cfg->data_dir, TLS_KEY_FILE);
    struct file_ref cf = {"the self-signed certificate", cpath};
    struct file_ref kf = {"its key", kpath};
    snprintf(out->cert_path, sizeof out->cert_path, "%s", cpath);
    gd_err rc;
    /* the key is renamed into place before the certificate: a certificate means a whole pair */
    if (access(cpath, F_OK) == 0 && access(kpath, F_OK) == 0) {
        if ((rc = read_small(cf, &out->cert_pem, err, errlen)) ||
            (rc = read_small(kf, &out->key_pem, err, errlen)) ||
            (rc = check_pair(out->cert_pem, out->key_pem, cf, kf, cfg->host, info, err, errlen))) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (remove %s and %s to make a new one)", cpath, kpath);
            tls_creds_free(out);
            return rc;
        }
        warn_key_mode(kf);
        if (info->not_after == (time_t)-1 || time(NULL) < info->not_after - 86400) {
            if (!info->names_host)
                log_warn("tls",
                         "the self-signed certificate %s does not name host %s (it was made for "
                         "another host); remove it and %s to make a new one",
                         cpath, cfg->host, kpath);
            return GD_OK;
        }
        log_warn("tls",
                 "the self-signed certificate %s expires within a day: making a new one "
                 "(its fingerprint changes)",
                 cpath);
        tls_creds_free(out);
        snprintf(out->cert_path, sizeof out->cert_path, "%s", cpath);
    }
    if ((rc = make_dirs(cfg->data_dir, err, errlen)) ||
        (rc = make_pair(cfg->host, &out->cert_pem, &out->key_pem, err, errlen)))
        return rc;
    if ((rc = write_file(kpath, out->key_pem, 0600, err, errlen)) ||
        (rc = write_file(cpath, out->cert_pem, 0644, err, errlen)) ||
        (rc = check_pair(out->cert_pem, out->key_pem, cf, kf, cfg->host, info, err, errlen))) {
        tls_creds_free(out);
        return rc;
    }
    out->generated = true;
    log_info("tls", "made a self-signed certificate for this server: %s (key %s)", cpath, kpath);
    return GD_OK;
}

/* tls_cert and tls_key. */
static gd_err given_files(const config *cfg, tls_creds *out, struct cert_info *info, char *err,
                          size_t errlen)
{
    struct file_ref cf = {"tls_cert", cfg->tls_cert};
    struct file_ref kf = {"tls_key", cfg->tls_key};
    snprintf(out->cert_path, sizeof out->cert_path, "%s", cfg->tls_cert);
    gd_err rc;
    if ((rc = read_small(cf, &out->cert_pem, err, errlen)) ||
        (rc = read_small(kf, &out->key_pem, err, errlen)) ||
        (rc = check_pair(out->cert_pem, out->key_pem, cf, kf, cfg->host, info, err, errlen))) {
        tls_creds_free(out);
        return rc;
    }
    warn_key_mode(kf);
    warn_validity(cf, info);
    if (!info->names_host)
        log_warn("tls",
                 "tls_cert %s does not name host %s: clients that connect by that name "
                 "and check it will refuse it",
                 cfg->tls_cert, cfg->host);
    return GD_OK;
}

/* tls_client_ca's certificates into out: PEM, each one parsed, at least one. */
static gd_err client_cas(const config *cfg, tls_creds *out, char *err, size_t errlen)
{
    struct file_ref f = {"tls_client_ca", cfg->tls_client_ca};
    gd_err rc = read_small(f, &out->client_ca_pem, err, errlen);
    if (rc) return rc;
    gnutls_datum_t pem = {(unsigned char *)out->client_ca_pem,
                          (unsigned)strlen(out->client_ca_pem)};
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0;
    int r = gnutls_x509_crt_list_import2(&list, &n, &pem, GNUTLS_X509_FMT_PEM, 0);
    for (unsigned i = 0; r >= 0 && i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
    if (r < 0 || n == 0) {
        snprintf(err, errlen,
                 "tls_client_ca %s: not PEM CA certificates (-----BEGIN CERTIFICATE-----): %s",
                 cfg->tls_client_ca, r < 0 ? gnutls_strerror(r) : "none in the file");
        return GD_EINVAL;
    }
    out->client_cas = n;
    log_info("tls",
             "clients must show a certificate issued by one of the %u CA certificate%s of %s", n,
             n == 1 ? "" : "s", cfg->tls_client_ca);
    return GD_OK;
}

gd_err tls_load(const config *cfg, tls_creds *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    bool files = cfg->tls_cert[0] || cfg->tls_key[0];
    if (cfg->tls_client_ca[0] && !files && !cfg->tls_self_signed) {
        snprintf(err, errlen,
                 "tls_client_ca is set but goosed serves no TLS: client certificates need "
                 "tls_cert and tls_key, or tls_self_signed");
        return GD_EINVAL;
    }
    if (files && cfg->tls_self_signed) {
        snprintf(err, errlen,
                 "tls_self_signed is true and tls_cert or tls_key is set too: give "
                 "either the certificate and key files, or tls_self_signed");
        return GD_EINVAL;
    }
    if (files && (!cfg->tls_cert[0] || !cfg->tls_key[0])) {
        snprintf(err, errlen,
                 "%s is set but %s is not: TLS needs both the certificate (tls_cert, "
                 "env GOOSE_TLS_CERT) and its private key (tls_key, env GOOSE_TLS_KEY), PEM files",
                 cfg->tls_cert[0] ? "tls_cert" : "tls_key",
                 cfg->tls_cert[0] ? "tls_key" : "tls_cert");
        return GD_EINVAL;
    }
    struct cert_info info = {0};
    gd_err rc = files ? given_files(cfg, out, &info, err, errlen)
                      : self_signed(cfg, out, &info, err, errlen);
    if (!rc && cfg->tls_client_ca[0]) rc = client_cas(cfg, out, err, errlen);
    if (rc) {
        tls_creds_free(out);
        return rc;
    }
    memcpy(out->fingerprint, info.fingerprint, sizeof out->fingerprint);
    return GD_OK;
}
