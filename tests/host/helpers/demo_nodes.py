"""The product's Segment Image and Concept Mask nodes on the bundled demo model, as the newcomer tests call them."""


def segment(ca, models, image, concepts, caption, softmax=True):
    """CONCEPT_MAPS of an image, at the paper's noise 0.5 and layers auto; models: (model, clip, vae)."""
    model, clip, vae = models
    return ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
        model=model, clip=clip, vae=vae, image=image, concepts=concepts, layers="auto", space="output",
        softmax=softmax, token_pooling="first", noise_level=0.5, noise_samples=1, seed=0, caption=caption).args[0]


def mask(ca, maps, concepts, method="argmax"):
    """Concept Mask's MASK, with no grow, blur or holes filled."""
    return ca.nodes.map_nodes.ConceptMask.execute(
        concept_maps=maps, concepts=concepts, method=method, threshold=0.5, grow=0, blur=0.0, fill_holes=False,
        invert=False, space="as_made").args[0]
