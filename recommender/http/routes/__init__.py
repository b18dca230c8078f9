"""The endpoints, one APIRouter per topic; ``create_app`` mounts them in this order."""
