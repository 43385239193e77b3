
$01a206f5-261f-7371-bf96-e6579ccf34c3tessera.ledger.v1.LedgerPostedrival"hq*$01a206f5-2614-7399-b9dc-b74c081374bd0¯Ôóì²˜8¯Ôóì²˜B$01a206f5-2617-7532-befe-73995d802cb6J$01a206f5-2616-76d0-a1c3-8619cb2756b5R
serviceledgerÒÛ
$01a206f5-2616-76d0-a1c3-8619cb2756b5$01a206f5-261f-7370-a3a6-d26bff5daa60topup">
+member:01a206f5-2614-7399-b9dc-b74c081374bdsv_principalˆ'"9
tenant:rival:branch:hq:sv_soldsv_principaløØÿÿÿÿÿÿÿ*ˆ' 8ˆ'@ˆ'