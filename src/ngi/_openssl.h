/* The interpreter's own OpenSSL, called directly on the ssl module's objects.
 *
 * Why: each call through the ssl module (MemoryBIO.write, SSLObject.read,
 * write, MemoryBIO.read and .pending) costs a method call, argument parsing,
 * a result object and a GIL release; on a 1 KiB TLS echo they were a tenth
 * of the server's CPU.  The OpenSSL functions underneath are the same ones
 * the ssl module calls.
 *
 * How, without linking against OpenSSL (a wheel carries no libssl, and need
 * not match the one the interpreter uses): the functions are looked up in
 * the `_ssl` extension module's own image (dlopen with RTLD_NOLOAD on its
 * file, then dlsym), so they are exactly the OpenSSL that `_ssl` uses,
 * whether it links it dynamically (Linux, Homebrew) or carries it inside.
 * Nothing else is searched: a different OpenSSL in the process must never
 * be called on `_ssl`'s objects.
 *
 * The objects: `_ssl._SSLSocket` (what SSLObject wraps) starts with
 * PyObject_HEAD, a PyObject * and the `SSL *`; `_ssl.MemoryBIO` with
 * PyObject_HEAD and the `BIO *`.  That layout is private to CPython (the
 * same from 3.6 to 3.14), so it is checked for every connection before
 * it is used: `_ssl` stores the object as the SSL's app data (ex_data 0),
 * and the BIOs must be the SSL's read and write BIOs.  If any of this
 * fails, the connection goes through the ssl module's methods instead.
 *
 * Only the data path is here: the handshake, shutdown, certificates and
 * everything an application sees stay with the ssl module.
 */
#ifndef NGI_OPENSSL_H
#define NGI_OPENSSL_H

#include <Python.h>
#include <dlfcn.h>
#include <stddef.h>

/* The stable values of OpenSSL's SSL_get_error() (ssl.h). */
#define NGI_SSL_ERROR_SSL 1
#define NGI_SSL_ERROR_WANT_READ 2
#define NGI_SSL_ERROR_SYSCALL 5
#define NGI_SSL_ERROR_ZERO_RETURN 6

/* SSL_get_error() reads the thread's error queue, which must be empty
 * before the call it explains (clearing it always costs more than the
 * peek: OpenSSL 3 walks all its slots). */
#define NGI_OPENSSL_FRESH_ERRORS() \
    do { if (ngi_openssl.ERR_peek_error()) ngi_openssl.ERR_clear_error(); } while (0)

typedef struct {
    PyObject_HEAD
    PyObject *socket;
    void *ssl;
} ngi_ssl_socket_head;  /* the first fields of _ssl._SSLSocket */

typedef struct {
    PyObject_HEAD
    void *bio;
} ngi_memory_bio_head;  /* the first fields of _ssl.MemoryBIO */

typedef struct {
    int (*SSL_read_ex)(void *, void *, size_t, size_t *);
    int (*SSL_write_ex)(void *, const void *, size_t, size_t *);
    int (*SSL_get_error)(const void *, int);
    void *(*SSL_get_ex_data)(const void *, int);
    void *(*SSL_get_rbio)(const void *);
    void *(*SSL_get_wbio)(const void *);
    int (*BIO_write)(void *, const void *, int);
    int (*BIO_read)(void *, void *, int);
    size_t (*BIO_ctrl_pending)(void *);
    unsigned long (*ERR_peek_error)(void);
    unsigned long (*ERR_peek_last_error)(void);
    void (*ERR_clear_error)(void);
    void (*ERR_error_string_n)(unsigned long, char *, size_t);
    const char *(*ERR_reason_error_string)(unsigned long);
} ngi_openssl_api;

static ngi_openssl_api ngi_openssl;
static int ngi_openssl_loaded = 0;

/* Look the functions up in the image of `_ssl` (its file); 0 if all were
 * found, -1 otherwise (then none is used). */
static int ngi_openssl_load(const char *ssl_module_file) {
    void *image = dlopen(ssl_module_file, RTLD_NOW | RTLD_NOLOAD);
    if (image == NULL)
        return -1;
#define NGI_FIND(name) \
    if ((*(void **)&ngi_openssl.name = dlsym(image, #name)) == NULL) return -1;
    NGI_FIND(SSL_read_ex)
    NGI_FIND(SSL_write_ex)
    NGI_FIND(SSL_get_error)
    NGI_FIND(SSL_get_ex_data)
    NGI_FIND(SSL_get_rbio)
    NGI_FIND(SSL_get_wbio)
    NGI_FIND(BIO_write)
    NGI_FIND(BIO_read)
    NGI_FIND(BIO_ctrl_pending)
    NGI_FIND(ERR_peek_error)
    NGI_FIND(ERR_peek_last_error)
    NGI_FIND(ERR_clear_error)
    NGI_FIND(ERR_error_string_n)
    NGI_FIND(ERR_reason_error_string)
#undef NGI_FIND
    ngi_openssl_loaded = 1;
    return 0;  /* the image stays loaded: `_ssl` is never unloaded */
}

/* The SSL * of an _ssl._SSLSocket, after the checks above; NULL if they
 * fail.  `in` and `out` get the BIO * of the two MemoryBIOs. */
static void *ngi_openssl_session(PyObject *sslobj, PyObject *incoming,
                                 PyObject *outgoing, void **in, void **out) {
    void *ssl, *rbio, *wbio;
    if (!ngi_openssl_loaded)
        return NULL;
    ssl = ((ngi_ssl_socket_head *)sslobj)->ssl;
    rbio = ((ngi_memory_bio_head *)incoming)->bio;
    wbio = ((ngi_memory_bio_head *)outgoing)->bio;
    if (ssl == NULL || rbio == NULL || wbio == NULL
            || ngi_openssl.SSL_get_ex_data(ssl, 0) != (void *)sslobj
            || ngi_openssl.SSL_get_rbio(ssl) != rbio
            || ngi_openssl.SSL_get_wbio(ssl) != wbio)
        return NULL;
    *in = rbio;
    *out = wbio;
    return ssl;
}

#endif
