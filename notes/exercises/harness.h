// harness.h: the top of every grading harness (NN-name/harness.c). grade.sh compiles a harness with
// -DSTUDENT_C='"/path/student.c"' -DCHECK_C='"/path/notes/check.c"': check.c (the project's checks:
// claims, gradcheck, refcheck) is included whole without its main, and it includes the student's
// file without its main. The student's file cannot define macros here: grade.sh refuses a file that
// differs from a fresh stub outside the TODO regions, and any preprocessor line inside them.
#define CHECK_NO_MAIN
#define DIFFUSION_C STUDENT_C
#include CHECK_C

static const int IS_DOUBLE = sizeof(real) == sizeof(double);

// One check: a quantity named in words, its measured error, the tolerance, the verdict. grade.sh
// reads the error and the tolerance back and judges the line again itself.
static int line(const char *what, double err, double tol) {
    int ok = err <= tol;  // NaN fails
    printf("  %-70s %10.3e  (tol %.1e)  %s\n", what, err, tol, ok ? "PASS" : "FAIL");
    return !ok;
}
// *worst = max(*worst, d), and NaN once any d is NaN
static void upd(double *worst, double d) {
    if (isnan(d) || isnan(*worst)) *worst = NAN;
    else if (d > *worst) *worst = d;
}
// The OpenMP build (4 threads): two identical calls must give identical bytes. Prints a line whose
// error is the number of bytes that differ (tolerance 0).
static int same_bytes(const char *what, const void *a, const void *b, size_t nbytes) {
    const unsigned char *p = a, *q = b;
    size_t differ = 0;
    for (size_t i = 0; i < nbytes; i++) differ += p[i] != q[i];
    char name[160];
    snprintf(name, sizeof name, "%s: bytes that differ between two identical calls", what);
    return line(name, (double)differ, 0);
}
// The OpenMP build, for the samplers (exercises 9-12): sampler o twice from the same seed through
// sample_loop (the default 28x28 network with random weights, 4 labelled images, the linear
// schedule with T steps): the final x_0 must be the same bytes. what: the command it stands for.
static int sampler_twice(const char *what, const SampleOptions *o, int T) {
    Config c = DEFAULT_CONFIG;
    enum { B = 4 };
    Rng init = {13};
    Model *m = model_create(&c, 2 * B);  // room for guidance's 2B
    params_init(m, &init, 1);
    Schedule s = schedule_make(SCHEDULE_LINEAR, T);
    size_t n = (size_t)B * c.img_c * c.img_h * c.img_w;
    real *x[2];
    int label[B] = {1, 2, 3, 4};
    for (int k = 0; k < 2; k++) {
        Rng r = {5};
        x[k] = xmalloc(n * sizeof(real));
        sample_loop(x[k], m, &s, label, B, o, &r, 0);
    }
    char name[120];
    snprintf(name, sizeof name, "%s: x_0", what);
    int fails = same_bytes(name, x[0], x[1], n * sizeof(real));
    free(x[0]), free(x[1]);
    schedule_free(&s);
    model_free(m);
    return fails;
}
static real *randoms(size_t n, Rng *r) {
    real *p = xmalloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) p[i] = (real)(2 * rng_uniform(r) - 1);
    return p;
}
// The student's own program (schedule, train, sample, ...) and notes/check.c's commands (claims,
// gradcheck, refcheck), both on the student's code.
static int student_main(int argc, char **argv) {
    int n_check = sizeof check_commands / sizeof check_commands[0];
    for (int i = 0; argc >= 2 && i < n_check; i++)
        if (!strcmp(argv[1], check_commands[i].name))
            return run_command(argc, argv, check_commands, n_check, "notes/check");
    return run_command(argc, argv, commands, N_COMMANDS, "./diffusion");
}
