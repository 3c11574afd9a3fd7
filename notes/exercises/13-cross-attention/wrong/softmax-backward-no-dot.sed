# the softmax's backward without its subtracted term: ds_ij = p_ij dp_ij, not p_ij (dp_ij - sum_k p_ik dp_ik)
/^static void cross_attention_backward(/,/^}/ s/^            softmax_backward(ds + i \* L, dp + i \* L, pb + i \* L, 1, len\[b\]);$/            for (int j = 0; j < len[b]; j++) ds[i * L + j] = pb[i * L + j] * dp[i * L + j];/
