"""A realistic synthetic local area to run Signpost against: `signpost demo`.

`area` builds the area (localities, settings, Local Offer) from a seed, `oruk` emits its
catalogue as an Open Referral UK feed, `referrals` and `agencies` generate what
practitioners and agencies do (calibrated in `calibration.json`), and `runner` drives a
running platform through its public HTTP APIs only.
"""
