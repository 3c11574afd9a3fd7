# both functions forget the padding offset K/2 (the patch starts at the output pixel instead of around it)
/^static void im2col_reference(/,/^}/ s/int y = oy \* stride + k \/ K - K \/ 2, x = ox \* stride + k % K - K \/ 2;/int y = oy * stride + k \/ K, x = ox * stride + k % K;/
/^static void col2im(/,/^}/ s/int pad = K \/ 2;/int pad = 0;/
