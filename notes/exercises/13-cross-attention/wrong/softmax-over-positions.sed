# each token's scores softmaxed over the N image positions instead of each position's over the tokens (the mask kept), forward and backward alike: gradcheck cannot see it
/^static void cross_attention_forward(/,/^}/ {
/^        for (int i = 0; i < N; i++) {$/,/^        }$/c\
        for (int i = 0; i < N * L; i++) s[i] *= scale;\
        for (int j = 0; j < L; j++) {  // softmax over the positions i, for each token j\
            real mx = s[j];\
            double sum = 0;\
            for (int i = 1; i < N; i++) mx = s[i * L + j] > mx ? s[i * L + j] : mx;\
            for (int i = 0; i < N; i++) sum += pb[i * L + j] = exp_real(s[i * L + j] - mx);\
            for (int i = 0; i < N; i++) pb[i * L + j] = j < len[b] ? (real)(pb[i * L + j] / sum) : 0;\
        }
}
/^static void cross_attention_backward(/,/^}/ {
/^        for (int i = 0; i < N; i++) {$/,/^        }$/c\
        for (int j = 0; j < L; j++) {  // its backward, down each column\
            double dot = 0;\
            for (int i = 0; i < N; i++) dot += pb[i * L + j] * dp[i * L + j];\
            for (int i = 0; i < N; i++)\
                ds[i * L + j] = j < len[b] ? pb[i * L + j] * (real)(dp[i * L + j] - dot) * scale : 0;\
        }
}
