"""The attack suite and collateral map of `guide-ray verify`: plain PyTorch, no Ray, no files but
the images and plots a verification writes into the folder it is given.

calibration.py turns embeddings of distinct identities into a match threshold; attacks.py holds
the attacks against one unlearned generator G_u; collateral.py measures who else changed;
suite.py runs all of it for one identity and returns its figures.
"""
